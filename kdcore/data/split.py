"""Stratified, seeded splits of index positions."""

from __future__ import annotations

import math

import numpy as np

from kdcore.data.errors import DataError


def train_test_split(*args, **kwargs):
    """scikit-learn's, imported on first use: training on in-memory tensors needs nothing but torch."""
    from sklearn.model_selection import train_test_split as split

    return split(*args, **kwargs)


def check_room(labels: np.ndarray, fraction: float, part: str, field: str) -> None:
    """A stratified part holds at least one sample of each class: say so before scikit-learn fails on it."""
    classes, held = len(np.unique(labels)), math.ceil(fraction * len(labels))
    if held < classes or len(labels) - held < classes:
        raise DataError(
            f"{len(labels)} samples of {classes} classes leave {held} for the {part} split ({field}={fraction:g}) "
            f"and {len(labels) - held} for the rest; each needs one sample of every class: add samples or change "
            f"{field}"
        )


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return disjoint index arrays (train, val, test) with each class in the same proportion."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    idx = np.arange(len(labels))
    check_room(labels, test_fraction, "test", "data.test_fraction")
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_of_rest = val_fraction / (1 - test_fraction)
    check_room(labels[rest], val_of_rest, "validation", "data.val_fraction")
    train, val = train_test_split(rest, test_size=val_of_rest, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, part: str = "validation", field: str = "data.val_fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Return disjoint index arrays (kept, held out) with `fraction` of each class held out."""
    idx = np.arange(len(labels))
    check_room(labels, fraction, part, field)
    kept, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)


def stratified_subsample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, stratified subsample of `size` items (all of them if fewer)."""
    if size >= len(labels):
        return np.arange(len(labels))
    picked, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return np.sort(picked)
