"""Fashion-MNIST (Xiao et al. 2017) from the original IDX files (gzip or plain), as Debian ships them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from kdcore.data.loaders import DataError

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (LeCun's MNIST format): magic 0x00 0x00 dtype ndim, big-endian dims, then the data."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file; re-download the Fashion-MNIST files")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({body.size} of {int(np.prod(dims))} values); re-download it")
    return body.reshape(dims).copy()  # writable, so torch.from_numpy can share it


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).exists():
            return root / name
    raise DataError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}; install dataset-fashion-mnist or pass its folder"
    )


def load_fashion_mnist_arrays(root: str | Path | None = None, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the `train` or `test` part."""
    root = Path(root or DEFAULT_ROOT)
    images, labels = (read_idx(_find(root, stem)) for stem in FILES[part])
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {part} images and labels in {root} differ in length; re-download them")
    return images, labels.astype(np.int64)
