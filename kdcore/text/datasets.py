"""Text datasets by name: imdb, ag_news and your own CSV, JSONL or folder-per-class files.

Each loader returns a DataBundle whose x is right-padded token ids (long, pad id 0) and whose
`tokenizer` holds the vocabulary fitted on the train split only.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

from kdcore.data.bundle import DataBundle
from kdcore.data.errors import DataError
from kdcore.data.registry import register_dataset
from kdcore.data.request import DataRequest
from kdcore.text.encoded_bundle import encode_bundle, label_order
from kdcore.text.folders import class_folders, read_class_folders
from kdcore.text.imdb_archive import IMDB_URL, download_aclimdb, find_aclimdb
from kdcore.text.records import LabelledTexts, RecordCheck
from kdcore.text.settings import TextSettings
from kdcore.text.table_files import read_csv, read_jsonl

AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]  # class index 1..4 in the CSV files


def text_dataset(name: str):
    """Register a text loader `(root, val, test, seed, text)` as dataset `name`, adapted to the DataRequest."""

    def add(loader):
        @functools.wraps(loader)
        def load(req: DataRequest) -> DataBundle:
            text = req.text or TextSettings()  # strict unless told otherwise
            return loader(req.root, req.val_fraction, req.test_fraction, req.seed, text=text)

        register_dataset(name, modality="text")(load)
        return loader

    return add


def require_root(root: str | None, dataset: str, what: str) -> Path:
    if not root:
        raise DataError(f"data.root is empty; {dataset} needs {what}: set it, e.g. --set data.root=PATH")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"data.root={root} does not exist; {dataset} needs {what}")
    return path


@text_dataset("imdb")
def load_imdb(
    root: str | None, val: float, test: float, seed: int, text: TextSettings = TextSettings(), url: str = IMDB_URL
) -> DataBundle:
    """Large Movie Review Dataset: 25,000 train and 25,000 test reviews, pos/neg; val carved from train."""
    if not root:
        raise DataError(
            "data.root is empty; imdb needs a folder holding aclImdb/ (downloaded there if absent): "
            "set it, e.g. --set data.root=data/imdb"
        )
    folder = find_aclimdb(Path(root).expanduser()) or download_aclimdb(Path(root).expanduser(), url)
    classes = ["neg", "pos"]
    check = RecordCheck(text.strict, set(classes))
    train = read_class_folders(folder / "train", classes, check)  # train/unsup (unlabelled) is not read
    held_out = read_class_folders(folder / "test", classes, check)
    check.finish(str(folder))
    return encode_bundle("imdb", str(folder), train, held_out, classes, val, test, seed, text)


@text_dataset("ag_news")
def load_ag_news(
    root: str | None, val: float, test: float, seed: int, text: TextSettings = TextSettings()
) -> DataBundle:
    """AG's News (Zhang et al., 2015): train.csv / test.csv rows of class index (1-4), title, description."""
    folder = require_root(root, "ag_news", "a folder with the ag_news_csv files train.csv and test.csv")
    check = RecordCheck(text.strict, {"1", "2", "3", "4"})
    parts = []
    for name in ("train.csv", "test.csv"):
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path} not found; data.root must hold ag_news_csv's train.csv and test.csv "
                "(class index, title, description; no header)"
            )
        parts.append(read_csv(path, check, [1, 2], 0, header=False))
    check.finish(str(folder))
    train, held_out = parts
    bundle = encode_bundle("ag_news", str(folder), train, held_out, ["1", "2", "3", "4"], val, test, seed, text)
    return replace(bundle, classes=AG_NEWS_CLASSES)


def train_test_files(root: Path, suffix: str) -> tuple[Path, Path | None]:
    """A file (split three ways) or a folder holding train.SUFFIX and, optionally, test.SUFFIX."""
    if root.is_file():
        return root, None
    train, test = root / f"train{suffix}", root / f"test{suffix}"
    if not train.is_file():
        raise DataError(
            f"data.root={root} is a folder without train{suffix}; point it at a {suffix} file "
            f"or a folder with train{suffix} (and test{suffix})"
        )
    return train, test if test.is_file() else None


def load_table(kind: str, root: str | None, val: float, test: float, seed: int, text: TextSettings) -> DataBundle:
    suffix = {"text_csv": ".csv", "text_jsonl": ".jsonl"}[kind]
    path = require_root(root, kind, f"a {suffix} file with {text.text_column!r} and {text.label_column!r} columns")
    train_path, test_path = train_test_files(path, suffix)
    check = RecordCheck(text.strict, set(text.labels) if text.labels else None)

    def read(p: Path) -> LabelledTexts:
        if kind == "text_csv":
            return read_csv(p, check, [text.text_column], text.label_column)
        return read_jsonl(p, check, text.text_column, text.label_column)

    train = read(train_path)
    classes = list(text.labels) if text.labels else sorted_labels(train, train_path)
    check.labels = set(classes)  # test labels must be ones the model was trained on
    held_out = read(test_path) if test_path else None
    check.finish(str(path))
    return encode_bundle(kind, str(path), train, held_out, classes, val, test, seed, text)


def sorted_labels(train: LabelledTexts, source: Path) -> list[str]:
    if not len(train):
        raise DataError(f"{source} holds no usable labelled texts")
    return label_order(train.labels)


@text_dataset("text_csv")
def load_text_csv(root, val, test, seed, text: TextSettings = TextSettings()) -> DataBundle:
    """Your CSV: a header row; text and label columns named by data.text.text_column / label_column."""
    return load_table("text_csv", root, val, test, seed, text)


@text_dataset("text_jsonl")
def load_text_jsonl(root, val, test, seed, text: TextSettings = TextSettings()) -> DataBundle:
    """Your JSONL: one object a line, text and label under data.text.text_column / label_column."""
    return load_table("text_jsonl", root, val, test, seed, text)


@text_dataset("text_folder")
def load_text_folder(root, val, test, seed, text: TextSettings = TextSettings()) -> DataBundle:
    """Your folders: root/<class>/*.txt, or root/train/<class>/*.txt with root/test/<class>/*.txt."""
    path = require_root(root, "text_folder", "a folder with one sub-folder of .txt files per class")
    has_split = (path / "train").is_dir() and (path / "test").is_dir()
    train_root = path / "train" if has_split else path
    classes = list(text.labels) if text.labels else class_folders(train_root)
    check = RecordCheck(text.strict, set(classes))
    train = read_class_folders(train_root, classes, check)
    held_out = read_class_folders(path / "test", class_folders(path / "test"), check) if has_split else None
    check.finish(str(path))
    return encode_bundle("text_folder", str(path), train, held_out, classes, val, test, seed, text)
