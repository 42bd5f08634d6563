"""Read a batch of labelled texts for ingest: a CSV file, a JSONL file, or a folder of .txt files per class.

The parsing is the text datasets' own (kdcore.text); what differs is the rule for a bad record: ingest
rejects the whole batch, naming the file and line, so a batch is stored whole or not at all.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from kdcore.data.errors import DataError
from kdcore.text.folders import read_class_folders
from kdcore.text.records import LabelledTexts, RecordCheck
from kdcore.text.table_files import read_csv, read_jsonl, read_text_file
from pipelines.stream.readers import BatchError, RawBatch, TextColumns

NOTHING = "nothing was ingested"


class IngestCheck(RecordCheck):
    """Strict record check whose errors say how to fix the batch (not a pipeline setting)."""

    def __init__(self, known_labels: list[str] | None):
        super().__init__(strict=True)
        self.known = known_labels

    def bad(self, where: str, reason: str) -> None:
        raise BatchError(f"{where}: {reason}; fix or remove that record and ingest the batch again ({NOTHING})")

    def accept(self, where: str, text: object, label: object, into: LabelledTexts) -> None:
        super().accept(where, text, label, into)
        if self.known is not None and into.labels[-1] not in self.known:
            raise BatchError(
                f"{where}: label {into.labels[-1]!r} is not among the stream's classes {self.known} "
                "(its scenario keeps the same classes); relabel that record "
                f"or ingest into a class-il stream ({NOTHING})"
            )


def read_text_batch(path: Path, fmt: str, columns: TextColumns, known_labels: list[str] | None) -> RawBatch:
    check = IngestCheck(known_labels)
    try:
        if fmt == "csv":
            require_csv_columns(path, columns)
            texts, files = read_csv(path, check, [columns.text], columns.label), [path]
        elif fmt == "jsonl":
            texts, files = read_jsonl(path, check, columns.text, columns.label), [path]
        else:
            texts, files = read_text_folder(path, check)
    except DataError as e:  # a file-level problem the text loaders report (unreadable file, ...)
        raise BatchError(f"{e} ({NOTHING})") from None
    if not len(texts):
        raise BatchError(f"{path} holds no labelled texts; add some ({NOTHING})")
    return RawBatch(texts.labels, files, texts=texts.texts)


def require_csv_columns(path: Path, columns: TextColumns) -> None:
    header = next(csv.reader(io.StringIO(read_text_file(path), newline="")), None)
    if header is None:
        raise BatchError(
            f"{path} is empty; it needs a header row naming the {columns.text!r} and {columns.label!r} columns "
            f"({NOTHING})"
        )
    for name, option in ((columns.text, "--text-column"), (columns.label, "--label-column")):
        if name not in header:
            raise BatchError(
                f"{path}: no column {name!r} in the header {header}; rename the column or pass {option} ({NOTHING})"
            )


def read_text_folder(root: Path, check: IngestCheck) -> tuple[LabelledTexts, list[Path]]:
    """`root/<class>/*.txt`, one text per file; any other file rejects the batch (it would be silently left out)."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise BatchError(
            f"{root} has no class subfolders; put each class's .txt files in a subfolder named after the class "
            f"({NOTHING})"
        )
    for d in class_dirs:
        for f in sorted(d.rglob("*")):
            if f.name.startswith("."):
                continue
            if f.is_dir() or f.suffix != ".txt" or f.parent != d:
                raise BatchError(f"{f} is not a .txt file directly in a class folder; move or remove it ({NOTHING})")
    classes = [d.name for d in class_dirs]
    texts = read_class_folders(root, classes, check)
    files = [f for d in class_dirs for f in sorted(d.glob("*.txt"))]
    return texts, files
