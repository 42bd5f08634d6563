"""Incoming batches: their formats, and the readers of images and tensors (an image folder per class, a .pt or
.npz file with inputs and labels). Texts are read by text_batches.py; `ingest.read_batch` picks the reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
FORMATS = ("auto", "images", "pt", "npz", "csv", "jsonl", "text-folder")
TEXT_FORMATS = ("csv", "jsonl", "text-folder")
BY_SUFFIX = {".pt": "pt", ".npz": "npz", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class BatchError(ValueError):
    """A batch that cannot be ingested; the message names the input and the fix."""


@dataclass(frozen=True)
class RawBatch:
    labels: list[str]  # class name per example
    files: list[Path]  # the source files, for the manifest
    x: torch.Tensor | None = None  # images / feature vectors: float32 (N, C, H, W)
    texts: list[str] | None = None  # texts: one string per example

    @property
    def modality(self) -> str:
        return "text" if self.texts is not None else "image"


@dataclass(frozen=True)
class TextColumns:
    """Where a CSV column / JSONL key holds the text and the label."""

    text: str = "text"
    label: str = "label"


def detect_format(path: Path) -> str:
    """The batch format from the path: a folder of images or of .txt files per class, or the file suffix."""
    if path.is_dir():
        files = [
            f
            for d in path.iterdir()
            if d.is_dir() and not d.name.startswith(".")
            for f in d.rglob("*")
            if f.is_file() and not f.name.startswith(".")
        ]
        others = sorted(f for f in files if f.suffix != ".txt")
        if others and len(others) < len(files):
            raise BatchError(
                f"{path} holds .txt files but also {others[0]}; a batch is either texts or images: "
                "move the other files out (nothing was ingested)"
            )
        return "images" if others or not files else "text-folder"
    if path.suffix.lower() in BY_SUFFIX:
        return BY_SUFFIX[path.suffix.lower()]
    raise BatchError(
        f"{path}: cannot tell the format from the name; rename it (.pt, .npz, .csv, .jsonl) or pass "
        f"--format ({', '.join(FORMATS[1:])})"
    )


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
        raise BatchError(
            f"{source}: label {int(labels.max())} has no name in classes ({len(classes)} given); "
            "fix the labels or the classes list"
        )
    return [classes[int(v)] for v in labels]


def read_tensor_file(path: Path) -> RawBatch:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BatchError(
            f"{path} cannot be read as a tensor file ({type(e).__name__}); "
            "save a dict with 'inputs' and 'labels' via torch.save"
        ) from None
    if not isinstance(blob, dict) or "inputs" not in blob or "labels" not in blob:
        raise BatchError(f"{path} must hold a dict with 'inputs' and 'labels' (and optionally 'classes')")
    labels = blob["labels"].numpy() if torch.is_tensor(blob["labels"]) else blob["labels"]
    x = _as_images(blob["inputs"], path)
    return RawBatch(_as_names(labels, blob.get("classes"), len(x), path), [path], x=x)


def read_npz_file(path: Path) -> RawBatch:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise BatchError(
            f"{path} cannot be read as a .npz file ({type(e).__name__}); write it with numpy.savez"
        ) from None
    if "inputs" not in arrays or "labels" not in arrays:
        raise BatchError(f"{path} must hold arrays 'inputs' and 'labels' (and optionally 'classes')")
    x = _as_images(arrays["inputs"], path)
    return RawBatch(_as_names(arrays["labels"], arrays.get("classes"), len(x), path), [path], x=x)


def read_image_folder(root: Path) -> RawBatch:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise BatchError(
            f"{root} has no class subfolders; put each class's images in a subfolder named after the class"
        )
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
                raise BatchError(
                    f"{f} is not a readable image ({type(e).__name__}); fix or remove it, nothing was ingested"
                ) from None
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
    return RawBatch(labels, files, x=x)
