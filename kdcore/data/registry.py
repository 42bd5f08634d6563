"""Datasets by name, so a config can say `data.dataset: fashion_mnist` and never import a loader.

Each loader takes a DataRequest and returns a DataBundle, and registers itself with `@register_dataset`.
`kdcore.datasets` imports every loader module, image and text, so its registry is complete.
"""

from __future__ import annotations

from collections.abc import Callable

from kdcore.data.bundle import DataBundle
from kdcore.data.errors import DataError
from kdcore.data.request import DataRequest

Loader = Callable[[DataRequest], DataBundle]
DATASETS: dict[str, Loader] = {}
MODALITY: dict[str, str] = {}  # "image" or "text", by dataset name: which models and settings fit it


def register_dataset(name: str, modality: str = "image"):
    def add(loader: Loader) -> Loader:
        DATASETS[name], MODALITY[name] = loader, modality
        return loader

    return add


def load_dataset(
    name: str, root: str | None = None, val: float = 0.15, test: float = 0.2, seed: int = 0, **options
) -> DataBundle:
    """`options` are the other DataRequest fields (image_size, mean, std, augment, strict, download, limit_train)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](DataRequest(root=root, val_fraction=val, test_fraction=test, seed=seed, **options))
