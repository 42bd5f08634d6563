"""Cut a dataset into a stream of batches for a lifelong-learning scenario (what `kdflow stream simulate` ingests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.stream.store import SCENARIOS, StreamError

PRESETS = ("fashion_mnist", "digits")


def preset_arrays(preset: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, H, W) uint8 or float in [0, 1], labels, class names)."""
    if preset == "fashion_mnist":
        from kdcore.data.fashion_mnist import load_fashion_mnist_arrays
        from kdcore.data.torchvision_sets import FASHION_CLASSES

        x, y = load_fashion_mnist_arrays(root, "train")
        return x, y, [c.replace("/", "-") for c in FASHION_CLASSES]
    if preset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), [str(c) for c in range(10)]
    raise StreamError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def scenario_batches(
    x: np.ndarray, y: np.ndarray, scenario: str, tasks: int, limit: int | None, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """class-il: disjoint class groups; domain-il: all classes, each batch with its own fixed pixel permutation
    (Permuted-MNIST style); more-data: disjoint random shares of the same distribution."""
    if scenario not in SCENARIOS:
        raise StreamError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    classes = np.unique(y)
    if not 1 <= tasks <= (len(classes) if scenario == "class-il" else len(y)):
        raise StreamError(f"--tasks {tasks} does not fit {len(classes)} classes / {len(y)} examples; pick fewer tasks")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    out = []
    for t in range(tasks):
        if scenario == "class-il":
            group = np.array_split(classes, tasks)[t]
            idx = order[np.isin(y[order], group)]
        else:
            idx = np.array_split(order, tasks)[t]
        idx = idx[:limit] if limit else idx
        xt = x[idx]
        if scenario == "domain-il" and t > 0:
            perm = np.random.default_rng(seed + t).permutation(xt[0].size)
            xt = xt.reshape(len(xt), -1)[:, perm].reshape(xt.shape)
        out.append((xt, y[idx]))
    return out


def write_batches(batches, class_names: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, (x, y) in enumerate(batches):
        path = folder / f"batch-{t + 1:02d}.npz"
        np.savez(path, inputs=x, labels=y, classes=np.array(class_names))
        paths.append(path)
    return paths
