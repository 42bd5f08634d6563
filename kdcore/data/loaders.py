"""Datasets by name. Each loader takes a DataRequest and returns a DataBundle (uint8 pixels + an InputView)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kdcore.data.assemble import bundle_from_pool
from kdcore.data.bundle import DataBundle
from kdcore.data.errors import DataError
from kdcore.data.imagefolder import load_imagefolder
from kdcore.data.request import DataRequest
from kdcore.data.torchvision_sets import load_cifar10, load_cifar100, load_fashion_mnist, load_mnist


def load_digits(req: DataRequest) -> DataBundle:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.uint8)[:, None, :, :]  # (N, 1, 8, 8), integer values 0..16
    return bundle_from_pool("digits", x, d.target, [str(c) for c in range(10)], req, scale=1 / 16)


DATASETS: dict[str, Callable[[DataRequest], DataBundle]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "imagefolder": load_imagefolder,
}


def load_dataset(
    name: str, root: str | None = None, val: float = 0.15, test: float = 0.2, seed: int = 0, **options
) -> DataBundle:
    """`options` are the other DataRequest fields (image_size, mean, std, augment, strict, download, limit_train)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](DataRequest(root=root, val_fraction=val, test_fraction=test, seed=seed, **options))


import kdcore.text.datasets  # noqa: E402,F401  (registers imdb, ag_news, text_csv, ...; needs DataError above)
