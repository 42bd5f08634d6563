"""Arrays in, DataBundle out: the split, subsample, normalisation and augmentation choices every loader shares."""

from __future__ import annotations

import numpy as np
import torch

from kdcore.data.bundle import DataBundle, Split
from kdcore.data.errors import DataError
from kdcore.data.request import DataRequest
from kdcore.data.split import stratified_holdout, stratified_split, stratified_subsample
from kdcore.data.view import InputView


def bundle_from_pool(
    name: str, x: np.ndarray, y: np.ndarray, classes: list[str], req: DataRequest, scale: float, augment: bool = False
) -> DataBundle:
    """One pool of labelled images (no official test split): seeded, stratified train / val / test."""
    check_class_sizes(name, y, classes, minimum=3)
    train, val, test = stratified_split(y, req.val_fraction, req.test_fraction, req.seed)
    return bundle_from_parts(
        name, (x[train], y[train]), (x[val], y[val]), (x[test], y[test]), classes, req, scale, augment
    )


def bundle_from_train_test(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    req: DataRequest,
    scale: float,
    augment: bool = False,
) -> DataBundle:
    """An official train / test pair: validation is held out of the training data, never the test set."""
    x, y = train
    check_class_sizes(name, y, classes, minimum=2)
    kept, held = stratified_holdout(y, req.val_fraction, req.seed)
    return bundle_from_parts(name, (x[kept], y[kept]), (x[held], y[held]), test, classes, req, scale, augment)


def bundle_from_parts(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    req: DataRequest,
    scale: float,
    augment: bool = False,
) -> DataBundle:
    """Final train / val / test arrays (N, C, H, W) -> bundle; statistics come from the training split only."""
    if req.limit_train is not None:
        keep = stratified_subsample(train[1], req.limit_train, req.seed)
        train = (train[0][keep], train[1][keep])
    splits = {
        n: Split(torch.from_numpy(np.ascontiguousarray(a)), torch.as_tensor(b, dtype=torch.long))
        for n, (a, b) in {"train": train, "val": val, "test": test}.items()
    }
    channels = splits["train"].x.shape[1]
    mean, std = req.mean, req.std
    if mean is None or std is None:
        stats = splits["train"].x.transpose(0, 1).reshape(channels, -1).double() * scale
        mean = mean or tuple(float(v) for v in stats.mean(1))
        std = std or tuple(max(float(v), 1e-6) for v in stats.std(1))
    if len(mean) != channels or len(std) != channels:
        raise DataError(
            f"data.mean and data.std need {channels} values (one per channel) for {name}; "
            f"got {len(mean)} and {len(std)}"
        )
    wants_augment = augment if req.augment == "auto" else req.augment == "crop_flip"
    side = splits["train"].x.shape[-1]
    view = InputView(
        mean=tuple(mean),
        std=tuple(std),
        scale=scale,
        crop_padding=max(1, side // 8) if wants_augment else 0,
        flip=wants_augment,
    )
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_classes=len(classes),
        input_shape=tuple(splits["train"].x.shape[1:]),
        name=name,
        classes=list(classes),
        view=view,
    )


def check_class_sizes(name: str, y: np.ndarray, classes: list[str], minimum: int) -> None:
    counts = np.bincount(y, minlength=len(classes))
    small = [classes[i] for i, n in enumerate(counts) if n < minimum]
    if small:
        raise DataError(
            f"{name}: class {small[0]!r} has {counts[classes.index(small[0])]} images but a stratified "
            f"split needs at least {minimum} per class; add images to it or remove the class"
        )
