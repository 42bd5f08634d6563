"""Labelled texts -> DataBundle: seeded stratified splits, a train-only vocabulary, padded id tensors."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kdcore.data.bundle import DataBundle, Split
from kdcore.data.errors import DataError
from kdcore.data.split import stratified_split, train_test_split  # scikit-learn on first use only
from kdcore.text.records import LabelledTexts
from kdcore.text.settings import TextSettings
from kdcore.text.tokenizer import PAD_ID, Tokenizer


def label_order(labels: list[str]) -> list[str]:
    """Sorted class names, numerically when every label is an integer (so "10" follows "9")."""
    unique = set(labels)
    if all(label.lstrip("-").isdigit() for label in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def encode_bundle(
    name: str,
    source: str,
    train: LabelledTexts,
    test: LabelledTexts | None,
    classes: list[str] | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    settings: TextSettings,
) -> DataBundle:
    """Split (test from `test` when given, else carved from `train`), fit the vocabulary on train, encode."""
    classes = list(classes) if classes is not None else label_order(train.labels)
    if len(classes) < 2:
        raise DataError(f"{source}: found {len(classes)} class(es) {classes}; a classifier needs at least 2")
    if test is not None and not len(test):
        raise DataError(f"{source}: the test split holds no usable labelled texts")
    index = {c: i for i, c in enumerate(classes)}
    pool_y = np.array([index[label] for label in train.labels])
    try:
        if test is None:
            train_idx, val_idx, test_idx = stratified_split(pool_y, val_fraction, test_fraction, seed)
            parts = {"train": (train, train_idx), "val": (train, val_idx), "test": (train, test_idx)}
        else:
            train_idx, val_idx = train_test_split(
                np.arange(len(pool_y)), test_size=val_fraction, stratify=pool_y, random_state=seed
            )
            parts = {
                "train": (train, np.sort(train_idx)),
                "val": (train, np.sort(val_idx)),
                "test": (test, np.arange(len(test))),
            }
    except ValueError as e:  # sklearn: too few texts of some class to stratify
        raise DataError(
            f"{source}: {len(train)} texts cannot be split stratified ({e}); add texts or lower data.val_fraction"
        ) from None
    train_texts = [train.texts[i] for i in parts["train"][1]]
    tokenizer = Tokenizer.fit(train_texts, settings.vocab_size, settings.min_freq, settings.max_len, settings.lowercase)
    encoded = {}
    for split_name, (texts, idx) in parts.items():
        raw = [texts.texts[i] for i in idx]
        ids, _ = tokenizer.encode(raw)
        y = torch.tensor([index[texts.labels[i]] for i in idx], dtype=torch.long)
        encoded[split_name] = (ids, y, raw)  # the raw texts too: a Hugging Face teacher reads them
    width = max(ids.shape[1] for ids, _, _ in encoded.values())  # one width, so input_shape is shared
    splits = {
        n: Split(F.pad(ids, (0, width - ids.shape[1]), value=PAD_ID), y, raw) for n, (ids, y, raw) in encoded.items()
    }
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_classes=len(classes),
        input_shape=(width,),
        name=name,
        classes=classes,
        tokenizer=tokenizer.state_dict(),
    )
