"""Fashion-MNIST (Xiao et al. 2017) from the original IDX files (gzip or plain), as Debian ships them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcore.data.errors import DataError
from kdcore.data.idx import find_idx_files, read_idx

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"


def load_fashion_mnist_arrays(root: str | Path | None = None, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the `train` or `test` part."""
    root = Path(root or DEFAULT_ROOT)
    files = find_idx_files([root])
    if files is None:
        raise DataError(
            f"Fashion-MNIST IDX files not found in {root}; install dataset-fashion-mnist or pass its folder"
        )
    images, labels = read_idx(files[f"{part}_images"]), read_idx(files[f"{part}_labels"])  # this part's two files only
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{files[f'{part}_images']} and {files[f'{part}_labels']} do not match; download them again")
    return images.astype(np.uint8), labels.astype(np.int64)
