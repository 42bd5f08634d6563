"""Every dataset kdcore can load, by name: importing this module registers the image and the text loaders."""

import kdcore.data
from kdcore.data.registry import DATASETS, MODALITY, load_dataset, register_dataset
from kdcore.plugins import import_modules
from kdcore.text import datasets  # noqa: F401  (imdb, ag_news, text_csv, text_jsonl, text_folder)

import_modules(kdcore.data.__name__, kdcore.data.__path__)  # each loader file registers its datasets

__all__ = ["DATASETS", "MODALITY", "load_dataset", "register_dataset"]
