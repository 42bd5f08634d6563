"""Read one incoming batch (an image folder per class, a .pt or .npz file) into tensors and class names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class BatchError(ValueError):
    """A batch that cannot be ingested; the message names the input and the fix."""


@dataclass(frozen=True)
class RawBatch:
    x: torch.Tensor  # float32 (N, C, H, W)
    labels: list[str]  # class name per example
    files: list[Path]  # the source files, for the manifest


def read_batch(path: Path) -> RawBatch:
    if path.is_dir():
        return read_image_folder(path)
    if not path.exists():
        raise BatchError(f"{path} does not exist; pass an image folder (one subfolder per class), a .pt or a .npz file")
    if path.suffix == ".pt":
        return read_tensor_file(path)
    if path.suffix == ".npz":
        return read_npz_file(path)
    raise BatchError(f"{path} is neither a folder nor a .pt/.npz file; convert it to one of those")


def _as_images(x, source: Path) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        x = x.float() / 255  # raw pixels -> [0, 1]
    if not x.is_floating_point():
        raise BatchError(f"{source}: inputs must be float or uint8, got {x.dtype}; convert them")
    if x.ndim == 2:  # (N, D) feature vectors
        x = x[:, None, None, :]
    elif x.ndim == 3:  # (N, H, W) grey images
        x = x[:, None]
    if x.ndim != 4:
        raise BatchError(f"{source}: inputs must have shape (N, D), (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise BatchError(f"{source}: inputs contain NaN or infinite values; clean them before ingesting")
    return x.float().contiguous()


def _as_names(labels, classes, n: int, source: Path) -> list[str]:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise BatchError(f"{source}: labels must be one per input ({n}), got shape {labels.shape}")
    if labels.dtype.kind in "US":
        return [str(v) for v in labels]
    if labels.dtype.kind not in "iu":
        raise BatchError(f"{source}: labels must be integers or class names, got {labels.dtype}")
    if classes is None:
        return [str(int(v)) for v in labels]
    classes = [str(c) for c in classes]
    if labels.min() < 0 or labels.max() >= len(classes):
        raise BatchError(f"{source}: label {int(labels.max())} has no name in classes ({len(classes)} given); fix the labels or the classes list")
    return [classes[int(v)] for v in labels]


def read_tensor_file(path: Path) -> RawBatch:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BatchError(f"{path} cannot be read as a tensor file ({type(e).__name__}); save a dict with 'inputs' and 'labels' via torch.save") from None
    if not isinstance(blob, dict) or "inputs" not in blob or "labels" not in blob:
        raise BatchError(f"{path} must hold a dict with 'inputs' and 'labels' (and optionally 'classes')")
    labels = blob["labels"].numpy() if torch.is_tensor(blob["labels"]) else blob["labels"]
    x = _as_images(blob["inputs"], path)
    return RawBatch(x, _as_names(labels, blob.get("classes"), len(x), path), [path])


def read_npz_file(path: Path) -> RawBatch:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise BatchError(f"{path} cannot be read as a .npz file ({type(e).__name__}); write it with numpy.savez") from None
    if "inputs" not in arrays or "labels" not in arrays:
        raise BatchError(f"{path} must hold arrays 'inputs' and 'labels' (and optionally 'classes')")
    x = _as_images(arrays["inputs"], path)
    return RawBatch(x, _as_names(arrays["labels"], arrays.get("classes"), len(x), path), [path])


def read_image_folder(root: Path) -> RawBatch:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise BatchError(f"{root} has no class subfolders; put each class's images in a subfolder named after the class")
    images, labels, files = [], [], []
    for class_dir in class_dirs:
        for f in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise BatchError(f"{f} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))}); remove it from the batch")
            try:
                with Image.open(f) as im:
                    im.load()
                    images.append(im.copy())
            except (UnidentifiedImageError, OSError) as e:
                raise BatchError(f"{f} is not a readable image ({type(e).__name__}); fix or remove it, nothing was ingested") from None
            labels.append(class_dir.name)
            files.append(f)
    if not images:
        raise BatchError(f"{root} holds no images; put them in one subfolder per class")
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise BatchError(f"images in {root} differ in size ({sorted(sizes)[:3]}...); resize them to one size")
    mode = "L" if all(im.mode in ("L", "1", "I;16") for im in images) else "RGB"
    arrays = np.stack([np.asarray(im.convert(mode)) for im in images])
    x = _as_images(arrays if mode == "L" else arrays.transpose(0, 3, 1, 2), root)
    return RawBatch(x, labels, files)
