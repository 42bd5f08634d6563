"""Continual-learning scores from an accuracy matrix A[i, j] = accuracy on task j after learning task i.

Entries for tasks not yet seen (j > i) may be NaN; no score reads them.
"""

from __future__ import annotations

import numpy as np


def _rows(matrix, step: int | None) -> tuple[np.ndarray, int]:
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.shape[0] > a.shape[1]:
        raise ValueError(f"accuracy matrix must be 2-D with at most as many rows as columns, got shape {a.shape}")
    return a, a.shape[0] - 1 if step is None else step


def average_accuracy(matrix, step: int | None = None) -> float:
    """Mean accuracy over the tasks seen so far (0..step) after learning task `step` (default: the last row)."""
    a, i = _rows(matrix, step)
    return float(a[i, : i + 1].mean())


def backward_transfer(matrix, step: int | None = None) -> float:
    """Lopez-Paz & Ranzato (2017): mean over j < i of A[i, j] - A[j, j]; negative means forgetting. 0 for one task."""
    a, i = _rows(matrix, step)
    if i == 0:
        return 0.0
    return float(np.mean([a[i, j] - a[j, j] for j in range(i)]))


def forgetting(matrix, step: int | None = None) -> float:
    """Chaudhry et al. (2018): mean over j < i of max_{l < i} A[l, j] - A[i, j]. 0 for one task."""
    a, i = _rows(matrix, step)
    if i == 0:
        return 0.0
    # nanmax: a stream's matrix has no entry for a batch before it arrived.
    return float(np.mean([np.nanmax(a[:i, j]) - a[i, j] for j in range(i)]))


def summarise(matrix, step: int | None = None) -> dict[str, float]:
    return {
        "avg_acc": average_accuracy(matrix, step),
        "bwt": backward_transfer(matrix, step),
        "forgetting": forgetting(matrix, step),
    }
