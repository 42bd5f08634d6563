"""Datasets by name. Each loader returns a DataBundle of normalised float tensors (N, C, H, W)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from kdcore.data.bundle import DataBundle, Split
from kdcore.data.split import stratified_split


class DataError(ValueError):
    """Input data that cannot be used, with a message that names the input and the fix."""


def _from_arrays(
    name: str, x: np.ndarray, y: np.ndarray, classes: list[str], val: float, test: float, seed: int
) -> DataBundle:
    train_idx, val_idx, test_idx = stratified_split(y, val, test, seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    # Normalise with train-split statistics only, so nothing leaks from val/test.
    mean, std = xt[train_idx].mean(), xt[train_idx].std().clamp_min(1e-6)
    xt = (xt - mean) / std
    pick = lambda i: Split(xt[i].contiguous(), yt[i].contiguous())  # noqa: E731
    return DataBundle(
        train=pick(train_idx),
        val=pick(val_idx),
        test=pick(test_idx),
        num_classes=len(classes),
        input_shape=tuple(xt.shape[1:]),
        name=name,
        classes=classes,
    )


def load_digits(root: str | None, val: float, test: float, seed: int) -> DataBundle:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8), values 0..16
    return _from_arrays("digits", x, d.target, [str(c) for c in range(10)], val, test, seed)


DATASETS: dict[str, Callable[..., DataBundle]] = {"digits": load_digits}


def load_dataset(name: str, root: str | None, val: float, test: float, seed: int, **options) -> DataBundle:
    """`options` go to the loader as keywords (text datasets: `text=TextSettings(...)`)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root, val, test, seed, **options)


import kdcore.text.datasets  # noqa: E402,F401  (registers imdb, ag_news, text_csv, ...; needs DataError above)
