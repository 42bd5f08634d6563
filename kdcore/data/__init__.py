from kdcore.data.bundle import DataBundle, Split
from kdcore.data.loaders import DATASETS, DataError, load_dataset
from kdcore.data.split import stratified_split

__all__ = ["DATASETS", "DataBundle", "DataError", "Split", "load_dataset", "stratified_split"]
