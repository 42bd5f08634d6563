"""Image data as uint8 tensors with the view that turns them into model inputs.

Datasets by name live in `kdcore.datasets`, which registers the image and the text loaders.
"""

from kdcore.data.bundle import DataBundle, Split
from kdcore.data.errors import DataError, SkippedFilesWarning
from kdcore.data.request import DataRequest
from kdcore.data.split import stratified_split
from kdcore.data.view import InputView, ViewParams

__all__ = [
    "DataBundle",
    "DataError",
    "DataRequest",
    "InputView",
    "SkippedFilesWarning",
    "Split",
    "ViewParams",
    "stratified_split",
]
