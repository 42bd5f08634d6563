"""The user's own images: one folder per class, either split into train/val/test folders or split here.

    root/cat/1.png, root/dog/2.jpg, ...                 -> seeded, stratified train / val / test
    root/train/cat/..., root/val/..., root/test/...     -> used as given (val, test optional: held out of train)

Images are decoded once, resized and centre-cropped to `data.image_size`, and kept as uint8.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from kdcore.data.assemble import bundle_from_parts, bundle_from_pool, check_class_sizes
from kdcore.data.bundle import DataBundle
from kdcore.data.errors import DataError, SkippedFilesWarning
from kdcore.data.registry import register_dataset
from kdcore.data.request import DataRequest
from kdcore.data.split import stratified_holdout

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
DEFAULT_SIZE = 32


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """Image files by suffix; anything else (notes, CSVs, hidden files) is not data and is ignored."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    """(C, size, size) uint8: resized so the shorter side fits, then centre-cropped."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        img = img.convert("L" if channels == 1 else "RGB")
        img = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_tree(
    folder: Path, classes: list[str] | None, req: DataRequest, skipped: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode every image under folder/<class>/; unreadable files go to `skipped`."""
    found = [p.name for p in class_folders(folder)]
    if not found:
        raise DataError(
            f"{folder} has no class folders; put the images in one folder per class ({folder}/<class>/<image>.png)"
        )
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        extra = sorted(set(found) - set(classes))[0]
        raise DataError(
            f"{folder / extra} is a class that the training folder does not have; add it to train/ or remove it"
        )
    size = req.image_size or DEFAULT_SIZE
    images, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(folder / name) if (folder / name).is_dir() else []
        if not files and folder / name in class_folders(folder):
            raise DataError(
                f"class folder {folder / name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images or remove the folder"
            )
        for path in files:
            try:
                images.append(decode(path, size, req.channels))
                labels.append(label)
            except Exception:  # noqa: BLE001  (PIL raises many kinds for a broken file)
                skipped.append(str(path))
    if not images:
        raise DataError(f"{folder} has no readable images; check the files or data.root")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


@register_dataset("imagefolder")
def load_imagefolder(req: DataRequest) -> DataBundle:
    if not req.root:
        raise DataError("data.root is not set; set it to the folder that holds one folder of images per class")
    root = Path(req.root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data.root={root} does not exist; set data.root to the folder that holds one folder of images per class"
        )
    skipped: list[str] = []
    if (root / "train").is_dir():
        train = read_tree(root / "train", None, req, skipped)
        classes = train[2]
        parts = {n: read_tree(root / n, classes, req, skipped)[:2] for n in ("val", "test") if (root / n).is_dir()}
        x, y = train[0], train[1]
        if "test" not in parts:  # hold the test split out of train first, so val never overlaps it
            check_class_sizes("imagefolder", y, classes, minimum=3 if "val" not in parts else 2)
            kept, held = stratified_holdout(y, req.test_fraction, req.seed, "test", "data.test_fraction")
            parts["test"], (x, y) = (x[held], y[held]), (x[kept], y[kept])
        if "val" not in parts:
            check_class_sizes("imagefolder", y, classes, minimum=2)
            kept, held = stratified_holdout(y, req.val_fraction, req.seed)
            parts["val"], (x, y) = (x[held], y[held]), (x[kept], y[kept])
        report_skipped(skipped, req)
        return bundle_from_parts("imagefolder", (x, y), parts["val"], parts["test"], classes, req, scale=1 / 255)
    x, y, classes = read_tree(root, None, req, skipped)
    report_skipped(skipped, req)
    return bundle_from_pool("imagefolder", x, y, classes, req, scale=1 / 255)


def report_skipped(skipped: list[str], req: DataRequest) -> None:
    if not skipped:
        return
    if req.strict:
        raise DataError(
            f"{len(skipped)} image file(s) cannot be read, first {skipped[0]}; "
            f"fix or remove them, or set data.strict=false to skip them"
        )
    warnings.warn(
        f"skipped {len(skipped)} unreadable image file(s): {', '.join(skipped)}", SkippedFilesWarning, stacklevel=3
    )
