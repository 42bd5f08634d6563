"""Every dataset kdcore can load, by name: importing this module registers the image and the text loaders."""

from kdcore.data import digits, imagefolder, torchvision_sets  # noqa: F401  (each registers its datasets)
from kdcore.data.registry import DATASETS, load_dataset, register_dataset
from kdcore.text import datasets  # noqa: F401  (imdb, ag_news, text_csv, text_jsonl, text_folder)

__all__ = ["DATASETS", "load_dataset", "register_dataset"]
