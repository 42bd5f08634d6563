"""Labelled texts from a folder per class, one text per `.txt` file (the aclImdb layout)."""

from __future__ import annotations

from pathlib import Path

from kdcore.data.errors import DataError
from kdcore.text.records import LabelledTexts, RecordCheck


def class_folders(root: Path) -> list[str]:
    """Sub-folders of `root` holding at least one .txt file, sorted: the classes."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.txt")))


def read_class_folders(root: Path, classes: list[str], check: RecordCheck) -> LabelledTexts:
    """Every `root/<class>/*.txt` for the given classes, in sorted file order."""
    out = LabelledTexts()
    for label in classes:
        folder = root / label
        if not folder.is_dir():
            raise DataError(f"{root} has no folder {label!r}; expected one folder of .txt files per class")
        for path in sorted(folder.glob("*.txt")):
            data = path.read_bytes()
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = data[: e.start].count(b"\n") + 1
                check.bad(f"{path}:{line}", f"undecodable bytes at byte {e.start} (the file is not UTF-8)")
                continue
            check.accept(f"{path}:1", text, label, out)
    return out
