"""Stratified, seeded splits of index positions."""

from __future__ import annotations

import numpy as np


def train_test_split(*args, **kwargs):
    """scikit-learn's, imported on first use: training on in-memory tensors needs nothing but torch."""
    from sklearn.model_selection import train_test_split as split

    return split(*args, **kwargs)


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return disjoint index arrays (train, val, test) with each class in the same proportion."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_of_rest = val_fraction / (1 - test_fraction)
    train, val = train_test_split(rest, test_size=val_of_rest, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return disjoint index arrays (kept, held out) with `fraction` of each class held out."""
    idx = np.arange(len(labels))
    kept, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)


def stratified_subsample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, stratified subsample of `size` items (all of them if fewer)."""
    if size >= len(labels):
        return np.arange(len(labels))
    picked, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return np.sort(picked)
