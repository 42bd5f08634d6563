from kdcore.data.bundle import DataBundle, Split
from kdcore.data.errors import DataError, SkippedFilesWarning
from kdcore.data.loaders import DATASETS, load_dataset
from kdcore.data.request import DataRequest
from kdcore.data.split import stratified_split
from kdcore.data.view import InputView, ViewParams

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataError",
    "DataRequest",
    "InputView",
    "SkippedFilesWarning",
    "Split",
    "ViewParams",
    "load_dataset",
    "stratified_split",
]
