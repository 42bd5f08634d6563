"""Cut a dataset into class-incremental tasks (what `kdflow stream simulate` runs through a pipeline): the first
task's classes are the pipeline's `data.classes`, each later task is a batch of the training images of its classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.stream.store import StreamError

DATASETS = ("fashion_mnist", "digits")


def dataset_arrays(dataset: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The training images (N, H, W) (uint8, or floats in [0, 1]), their labels and the class names, as the
    pipeline's own data names them (so a batch's classes are the pipeline's)."""
    if dataset == "fashion_mnist":
        from kdcore.data.fashion_mnist import load_fashion_mnist_arrays
        from kdcore.data.torchvision_sets import FASHION_CLASSES

        x, y = load_fashion_mnist_arrays(root, "train")
        return x, y, list(FASHION_CLASSES)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), [str(c) for c in range(10)]
    raise StreamError(
        f"kdflow stream simulate cuts {', '.join(DATASETS)} into tasks, not {dataset!r}; pick a preset of one"
    )


def class_tasks(class_names: list[str], tasks: int) -> list[list[str]]:
    """`tasks` disjoint groups of consecutive classes (5 tasks of 10 classes: 0-1, 2-3, ...)."""
    if not 2 <= tasks <= len(class_names) // 2:
        raise StreamError(
            f"--tasks {tasks} does not fit {len(class_names)} classes; pick 2 to {len(class_names) // 2} "
            "(a task has at least 2 classes)"
        )
    return [[class_names[i] for i in group] for group in np.array_split(np.arange(len(class_names)), tasks)]


def write_task_batch(
    x: np.ndarray, y: np.ndarray, class_names: list[str], task: list[str], limit: int | None, seed: int, path: Path
) -> Path:
    """The training images of `task`'s classes (at most `limit`, a seeded random share) as one .npz batch."""
    wanted = [class_names.index(c) for c in task]
    idx = np.random.default_rng(seed).permutation(np.flatnonzero(np.isin(y, wanted)))
    idx = np.sort(idx[:limit] if limit else idx)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, inputs=x[idx], labels=y[idx], classes=np.array(class_names))
    return path
