"""`kdflow predict`: a registered student on files, one CSV row per input, streamed in chunks.

MODEL is any MLflow model URI of a kdflow student (models:/NAME@alias, models:/NAME/3, runs:/...); INPUTS are
image files, folders of images, CSV / JSONL files with a `text` column, or folders of .txt files. Inputs that
cannot be read are listed and skipped (or stop everything under `strict`). The output is written to a temporary
file and renamed at the end: a failed prediction leaves no half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd

from kdcore.class_probabilities import probability_column
from kdcore.data.imagefolder import IMAGE_SUFFIXES
from pipelines.registry.registration import CLASSES_KEY, MODALITY_KEY, split_model_ref

TEXT_TABLES = {".csv", ".jsonl"}
CHUNK = 256  # inputs per model call: a folder of 100,000 images is never in memory at once


class PredictError(Exception):
    """Bad input to `kdflow predict`: the message is one sentence naming it and the fix (the CLI exits 1)."""


@dataclass
class PredictReport:
    predicted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, why)
    output: Path | None = None


@dataclass(frozen=True)
class Item:
    name: str  # what the output row calls it: a path, or path:N for record N of a CSV / JSONL
    read: Callable[[], object]  # the raw input: image bytes or a text


def champion_uri(preset: str) -> str:
    return f"models:/kdflow-{preset}-student@champion"


def predict(
    model: str,
    inputs: list[str | Path],
    output: Path | None = None,
    *,
    probs: bool = False,
    strict: bool = False,
    chunk_size: int = CHUNK,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> PredictReport:
    """Score `inputs` with the model at URI `model`; write CSV to `output` (stdout when None).

    `on_progress(done, total)` after every chunk (total None while a CSV / JSONL is being read)."""
    sources = [input_source(Path(p)) for p in inputs]  # missing paths, empty folders: before loading anything
    loaded = load_student(model)
    modality, classes = loaded.metadata.metadata[MODALITY_KEY], loaded.metadata.metadata[CLASSES_KEY]
    for path, kind in sources:
        if kind != modality:
            raise PredictError(
                f"{path} holds {kind}s but {model} is a{'n' if modality == 'image' else ''} {modality} classifier; "
                f"pass {'image files or folders' if modality == 'image' else 'CSV / JSONL / .txt texts'}"
            )
    items, total = (item for path, kind in sources for item in expand(path, kind)), None
    if all_listed(sources):  # paths only (not contents): a known total for the progress bar
        items = list(items)
        total = len(items)
    columns = ["input", "class", "probability"] + ([probability_column(c) for c in classes] if probs else [])
    report = PredictReport(output=output)
    with atomic_output(output) as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for chunk in chunks(iter(items), chunk_size):
            for name, answer in score(loaded, modality, chunk, report, strict):
                writer.writerow([name] + [answer[c] for c in columns[1:]])
                report.predicted += 1
            if on_progress:
                on_progress(report.predicted + len(report.skipped), total)
        if report.predicted == 0:
            first, why = report.skipped[0] if report.skipped else ("the inputs", "nothing to predict")
            raise PredictError(f"no input could be predicted: {first} {why}; check the files")
    return report


def load_student(uri: str):
    """The pyfunc at `uri`, or a one-sentence PredictError naming what is missing."""
    check_registered(uri)
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except Exception as e:  # noqa: BLE001  (MLflow raises many kinds for a bad URI)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PredictError(f"model {uri} cannot be loaded ({reason}); check the URI") from None
    if MODALITY_KEY not in (loaded.metadata.metadata or {}):
        raise PredictError(
            f"model {uri} takes tensors, not files (registered before kdflow models took raw inputs, or not a "
            "kdflow student); register a new version with `kdflow run`"
        )
    return loaded


def check_registered(uri: str) -> None:
    """models:/NAME@alias and models:/NAME/VERSION: say which of name, alias or version is missing."""
    if not uri.startswith("models:/") or uri.startswith("models:/m-"):
        return
    name, alias, version = split_model_ref(uri)
    client = mlflow.MlflowClient()
    where = mlflow.get_tracking_uri()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        raise PredictError(
            f"no registered model {name} in {where}; check the name or MLFLOW_TRACKING_URI, or run the pipeline first"
        ) from None
    try:
        if alias is not None:
            client.get_model_version_by_alias(name, alias)
        elif version is not None:
            client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        what = f"alias @{alias}" if alias is not None else f"version {version}"
        raise PredictError(f"{name} has no {what}; pick a version with models:/{name}/<version>") from None


def input_source(path: Path) -> tuple[Path, str]:
    """(path, "image" | "text"); a missing path, an empty folder or an unknown file type is a PredictError."""
    if path.is_dir():
        files = listed(path)
        if not files:
            raise PredictError(
                f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or .txt files; check the path"
            )
        return path, "text" if files[0].suffix.lower() == ".txt" else "image"
    if not path.is_file():
        raise PredictError(f"{path} does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return path, "image"
    if suffix in TEXT_TABLES | {".txt"}:
        return path, "text"
    raise PredictError(
        f"{path}: cannot tell an image or a text file from the name; use an image suffix, .csv / .jsonl or .txt"
    )


def listed(folder: Path) -> list[Path]:
    """A folder's image files, or else its .txt files, in name order (hidden files are not inputs)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images or [p for p in files if p.suffix.lower() == ".txt"]


def all_listed(sources: list[tuple[Path, str]]) -> bool:
    """True when every input is files (a known total for the progress bar); CSV / JSONL rows are streamed."""
    return all(path.suffix.lower() not in TEXT_TABLES or path.is_dir() for path, _ in sources)


def expand(path: Path, kind: str) -> Iterator[Item]:
    files = listed(path) if path.is_dir() else [path]
    for f in files:
        if f.suffix.lower() in TEXT_TABLES and not path.is_dir():
            yield from table_rows(f)
        elif kind == "image":
            yield Item(str(f), f.read_bytes)
        else:
            yield Item(str(f), lambda f=f: f.read_text(encoding="utf-8"))


def table_rows(path: Path) -> Iterator[Item]:
    """Records of a CSV (header row) or JSONL file with a `text` field, read one at a time."""
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".csv":
            records = csv.DictReader(f)
            if "text" not in (records.fieldnames or []):
                raise PredictError(f"{path} has no `text` column (columns: {records.fieldnames}); name it text")
            for n, record in enumerate(records, start=1):
                yield Item(f"{path}:{n}", lambda record=record: text_of(record))
        else:
            for n, line in enumerate(f, start=1):
                yield Item(f"{path}:{n}", lambda line=line: text_of(json.loads(line)))


def text_of(record) -> str:
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise ValueError("the record has no `text` string")
    return text


def chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score(loaded, modality: str, chunk: list[Item], report: PredictReport, strict: bool):
    """(input name, answer row) for every readable input of `chunk`; the others go to report.skipped."""
    ready = []
    for item in chunk:
        try:
            ready.append((item.name, item.read()))
        except (OSError, ValueError) as e:
            skip(report, item.name, f"cannot be read ({e})", strict)
    if not ready:
        return []
    try:
        return list(zip([n for n, _ in ready], answers(loaded, modality, [x for _, x in ready])))
    except Exception:  # noqa: BLE001  one bad image fails the whole call: find it, keep the others
        out = []
        for name, x in ready:
            try:
                out += [(name, answers(loaded, modality, [x])[0])]
            except Exception as e:  # noqa: BLE001
                skip(report, name, f"cannot be used as {'an image' if modality == 'image' else 'a text'} ({e})", strict)
        return out


def answers(loaded, modality: str, raw: list) -> list[dict]:
    frame = loaded.predict(pd.DataFrame({"image": raw}) if modality == "image" else raw)
    return frame.to_dict("records")


def skip(report: PredictReport, name: str, why: str, strict: bool) -> None:
    if strict:
        raise PredictError(f"{name} {why}; fix or remove it, or run without --strict to skip it")
    report.skipped.append((name, why))


class atomic_output:
    """A text file written under a temporary name and renamed on success; stdout when `path` is None."""

    def __init__(self, path: Path | None):
        self.path, self.tmp = path, None

    def __enter__(self) -> io.TextIOBase:
        if self.path is None:
            return sys.stdout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        return self.file

    def __exit__(self, kind, value, traceback) -> None:
        if self.path is None:
            return
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            Path(self.tmp).unlink(missing_ok=True)
