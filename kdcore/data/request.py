"""What a loader is asked for: where the files are, how to split, size and normalise them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kdcore.text.settings import TextSettings


@dataclass(frozen=True)
class DataRequest:
    root: str | None = None
    val_fraction: float = 0.15  # of the training data (datasets with an official test split)
    test_fraction: float = 0.2  # only for datasets without an official test split
    seed: int = 0
    image_size: int | None = None  # imagefolder: images are resized and centre-cropped to this side
    channels: int = 3  # imagefolder: 1 (grey) or 3 (RGB)
    mean: tuple[float, ...] | None = None  # per channel, on the [0, 1] scale; None: training-split statistics
    std: tuple[float, ...] | None = None
    augment: Literal["auto", "none", "crop_flip"] = "auto"  # auto: crop+flip for CIFAR, none otherwise
    strict: bool = False  # a corrupt image file is an error instead of a skipped file
    download: bool = True  # fetch missing torchvision datasets when the network is reachable
    limit_train: int | None = None  # keep a stratified subsample of this many training images
    text: TextSettings | None = None  # text datasets: tokenisation and record checks
