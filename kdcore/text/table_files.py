"""Labelled texts from a CSV file (a header names the columns) or a JSONL file (one object a line)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kdcore.data.errors import DataError
from kdcore.text.records import LabelledTexts, RecordCheck

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # reviews can be longer than csv's 128 KiB default


def read_text_file(path: Path) -> str:
    """The file as text; bytes that are not UTF-8 survive as surrogates, to be reported per record."""
    try:
        return path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); check data.root") from None


def read_csv(
    path: Path, check: RecordCheck, text_columns: Sequence[str | int], label_column: str | int, header: bool = True
) -> LabelledTexts:
    """Rows of `path`; columns by header name, or by position when `header` is False.

    The text is the text columns joined by a space (ag_news: title and description).
    """
    out = LabelledTexts()
    reader = csv.reader(io.StringIO(read_text_file(path), newline=""))
    if header:
        names = next(reader, None)
        if names is None:
            raise DataError(
                f"{path} is empty; it needs a header row naming the {', '.join(map(repr, text_columns))} and "
                f"{label_column!r} columns"
            )
        for column in (*text_columns, label_column):
            if column not in names:
                raise DataError(
                    f"{path}: no column {column!r} in the header {names}; "
                    "set data.text.text_column / data.text.label_column"
                )
        text_at, label_at = [names.index(c) for c in text_columns], names.index(label_column)
    else:
        text_at, label_at = list(text_columns), label_column
    first_line = reader.line_num + 1
    for row in reader:
        where = f"{path}:{first_line}"
        first_line = reader.line_num + 1  # a quoted field may span several lines
        if not row or not any(cell.strip() for cell in row):
            continue  # blank line
        cells = [row[i] for i in text_at if i < len(row)]
        text = " ".join(cells) if cells else None
        label = row[label_at] if label_at < len(row) else None
        check.accept(where, text, label, out)
    return out


def read_jsonl(path: Path, check: RecordCheck, text_key: str, label_key: str) -> LabelledTexts:
    out = LabelledTexts()
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            check.bad(where, f"not a JSON object ({e.msg})")
            continue
        if not isinstance(record, dict):
            check.bad(where, "not a JSON object")
            continue
        label = record.get(label_key)
        if isinstance(label, (dict, list)):
            check.bad(where, f"label {label_key!r} is not a single value")
            continue
        check.accept(where, record.get(text_key), label, out)
    return out
