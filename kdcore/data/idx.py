"""The IDX format of the original MNIST and Fashion-MNIST files (`train-images-idx3-ubyte.gz`, ...)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from kdcore.data.errors import DataError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file, gzipped (`.gz`) or not, as a numpy array of its declared type and shape."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read ({e}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file; expected the original MNIST-format files")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(
            f"{path} holds {len(body)} bytes of data but its header declares shape {dims}; download it again"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx_files(folders: list[Path]) -> dict[str, Path] | None:
    """The four IDX files (plain or `.gz`) from the first folder that holds all of them."""
    for folder in folders:
        found = {}
        for key, stem in IDX_FILES.items():
            for candidate in (folder / f"{stem}.gz", folder / stem):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(IDX_FILES):
            return found
    return None


def read_idx_dataset(files: dict[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images (N, 1, H, W) uint8, labels), (test images, labels)) from the four IDX files."""
    out = []
    for split in ("train", "test"):
        images, labels = read_idx(files[f"{split}_images"]), read_idx(files[f"{split}_labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{files[f'{split}_images']} and {files[f'{split}_labels']} do not match "
                f"({images.shape} images, {labels.shape} labels)"
            )
        out.append((images[:, None, :, :].astype(np.uint8), labels.astype(np.int64)))
    return out[0], out[1]
