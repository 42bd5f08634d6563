"""`kdflow ingest`: validate a batch, split off its test part, and publish it to the stream in one rename."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from pipelines.stream.readers import (
    FORMATS,
    TEXT_FORMATS,
    BatchError,
    RawBatch,
    TextColumns,
    detect_format,
    read_image_folder,
    read_npz_file,
    read_tensor_file,
)
from pipelines.stream.sample_digests import SampleIndex, drop_known_samples
from pipelines.stream.store import SCENARIOS, StreamError, StreamStore, pipeline_batches
from pipelines.stream.text_batches import read_text_batch


@dataclass
class IngestResult:
    stream: str
    batch_id: str  # the new batch; for a duplicate, the first stored batch that holds its samples
    duplicate: bool  # nothing new: every sample is already stored, nothing was written
    classes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    path: str = ""
    dropped: int = 0  # samples left out: already stored in `dropped_from`, or repeated within this batch
    dropped_from: list[str] = field(default_factory=list)


def content_digest(raw: RawBatch) -> str:
    """The same examples with the same labels give the same digest, whatever the file names or format.

    Texts are hashed as a sorted list of (text, label) pairs: the same records re-exported in another
    order or file format (CSV, JSONL, folders) are the same batch.
    """
    h = hashlib.sha256()
    if raw.texts is not None:
        h.update(b"text\0")
        h.update(json.dumps(sorted(zip(raw.texts, raw.labels)), ensure_ascii=False).encode())
        return h.hexdigest()
    h.update(str(tuple(raw.x.shape)).encode())
    h.update(raw.x.numpy().tobytes())
    h.update("\n".join(raw.labels).encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def split_test_part(labels: list[str], fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask of held-out examples: `fraction` of each class (at least one if it has two or more)."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for name in sorted(set(labels)):
        idx = torch.tensor([i for i, c in enumerate(labels) if c == name])
        n_test = int(len(idx) * fraction)
        if len(idx) >= 2:
            n_test = max(1, n_test)
        mask[idx[torch.randperm(len(idx), generator=generator)[:n_test]]] = True
    return mask


def stream_settings(store: StreamStore) -> dict | None:
    """Settings written by the stream's first batch; none while it has no batch (its first ingest may have been killed
    between writing them and publishing the batch)."""
    return store.settings() if store.batches() else None


def known_labels(store: StreamStore) -> list[str] | None:
    """The labels a new batch may carry: any in a class-il stream, else the classes of its first batch."""
    settings = stream_settings(store)
    return None if settings is None or settings["scenario"] == "class-il" else settings["classes"]


def check_fits_stream(store: StreamStore, raw: RawBatch, scenario: str, pipeline: str | None = None) -> dict:
    """The stream's settings (created by its first batch); rejects a batch that does not fit them."""
    settings = stream_settings(store)
    classes = sorted(set(raw.labels))
    input_shape = list(raw.x.shape[1:]) if raw.x is not None else None
    if settings is None:
        return {
            "name": store.name,
            "scenario": scenario,
            "modality": raw.modality,
            "input_shape": input_shape,
            "classes": classes,
            **({"pipeline": pipeline} if pipeline else {}),
        }
    if pipeline and settings.get("pipeline") != pipeline:
        bound = f"pipeline {settings['pipeline']!r}" if settings.get("pipeline") else "no pipeline"
        raise BatchError(
            f"stream {store.name!r} is bound to {bound}, not {pipeline!r}; pass another --stream for this pipeline"
        )
    modality = settings.get("modality", "image")  # streams from before text batches hold images
    if raw.modality != modality:
        raise BatchError(
            f"this batch holds {raw.modality}s but stream {store.name!r} holds {modality}s; "
            "ingest it into another stream"
        )
    if input_shape != settings["input_shape"]:
        raise BatchError(
            f"inputs of shape {tuple(raw.x.shape[1:])} do not match stream {store.name!r} "
            f"({tuple(settings['input_shape'])}); convert them or use another stream"
        )
    if settings["scenario"] != "class-il":
        unknown = [c for c in classes if c not in settings["classes"]]
        if unknown:
            raise BatchError(
                f"classes {unknown} are not among stream {store.name!r}'s classes {settings['classes']} "
                f"({settings['scenario']} keeps the same classes); relabel them or ingest into a class-il stream"
            )
    return settings


def write_parts(raw: RawBatch, classes: list[str], test: torch.Tensor, folder: Path) -> list[str]:
    """The train and test parts: tensors (`train.pt`, `test.pt`) or texts (`train.jsonl`, `test.jsonl`, one
    {"text", "label"} object a line; they are tokenised at retraining, with the model's vocabulary)."""
    if raw.texts is None:
        y = torch.tensor([classes.index(c) for c in raw.labels], dtype=torch.long)
        torch.save({"x": raw.x[~test].clone(), "y": y[~test].clone()}, folder / "train.pt")
        torch.save({"x": raw.x[test].clone(), "y": y[test].clone()}, folder / "test.pt")
        return ["train.pt", "test.pt"]
    for part, held_out in (("train", False), ("test", True)):
        lines = [
            json.dumps({"text": t, "label": c}, ensure_ascii=False)
            for t, c, h in zip(raw.texts, raw.labels, test.tolist())
            if h == held_out
        ]
        (folder / f"{part}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return ["train.jsonl", "test.jsonl"]


def remove_stale_staging(store: StreamStore) -> None:
    """Staging folders of ingests that were killed; only called under the ingest lock, so no one is writing them."""
    if store.incoming_dir.exists():
        for leftover in store.incoming_dir.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


def read_batch(
    path: Path, fmt: str = "auto", columns: TextColumns = TextColumns(), known_labels: list[str] | None = None
) -> RawBatch:
    """Every record of `path` checked, by the reader of its format.

    `known_labels` (a domain-il / more-data stream's classes) rejects other labels."""
    if fmt not in FORMATS:
        raise BatchError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if not path.exists():
        raise BatchError(
            f"{path} does not exist; pass a folder (one subfolder per class, of images or .txt files), "
            "a .pt / .npz file, or a .csv / .jsonl file of texts"
        )
    fmt = detect_format(path) if fmt == "auto" else fmt
    folder_format = fmt in ("images", "text-folder")
    if folder_format != path.is_dir():
        raise BatchError(
            f"{path} is {'a folder' if path.is_dir() else 'a file'}, but --format {fmt} reads "
            f"{'a folder' if folder_format else 'a file'}; pass the right --format"
        )
    if fmt in TEXT_FORMATS:
        return read_text_batch(path, fmt, columns, known_labels)
    image_readers = {"images": read_image_folder, "pt": read_tensor_file, "npz": read_npz_file}
    return image_readers[fmt](path)  # labels: check_fits_stream


def ingest(
    source: str | Path,
    store_root: str | Path,
    stream: str,
    scenario: str = "class-il",
    test_fraction: float = 0.2,
    fmt: str = "auto",
    columns: TextColumns = TextColumns(),
    pipeline: str | None = None,
    fits: Callable[[RawBatch], None] | None = None,
) -> IngestResult:
    """Add `source` to `stream` as one immutable batch of the samples not already stored; nothing new adds nothing.

    `fmt` is one of readers.FORMATS ("auto" tells it from the path); `columns` names the text and label
    columns (CSV) or keys (JSONL) of a text batch. `pipeline` binds the stream to that pipeline, whose
    champion then learns its batches; `fits(raw)` raises BatchError if the batch does not fit its model.
    """
    if scenario not in SCENARIOS:
        raise StreamError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    if not 0 < test_fraction < 1:
        raise StreamError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    source = Path(source)
    store = StreamStore(store_root, stream)
    raw = read_batch(source, fmt, columns, known_labels(store))  # validates every record before anything is written
    if fits is not None:
        fits(raw)
    with store.lock("ingest"):
        remove_stale_staging(store)
        settings = check_fits_stream(store, raw, scenario, pipeline)
        existing = store.batches()
        # Duplicates by content, per sample, against every batch this pipeline learns from: a renamed, re-ordered
        # or partly new batch adds only its new samples, so a sample held out for testing is never trained on.
        known = SampleIndex.of(existing + related_batches(store, pipeline))
        raw, digests, dropped = drop_known_samples(raw, known)
        if raw is None:
            first = known.batch_of(dropped.first_digest)
            return IngestResult(
                stream,
                first.id,
                duplicate=True,
                classes=first.classes,
                counts=first.manifest["counts"],
                path=str(first.path),
                dropped=dropped.count,
                dropped_from=dropped.batch_ids,
            )
        digest = content_digest(raw)
        batch_id = f"{len(existing) + 1:05d}-{digest[:12]}"
        classes = sorted(set(raw.labels))
        test = split_test_part(raw.labels, test_fraction, seed=int(digest[:8], 16))
        counts = {
            part: dict(sorted(Counter(c for c, t in zip(raw.labels, test.tolist()) if t == (part == "test")).items()))
            for part in ("train", "test")
        }
        store.incoming_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{batch_id}.", dir=store.incoming_dir))
        try:
            parts = write_parts(raw, classes, test, staging)
            manifest = {
                "id": batch_id,
                "stream": stream,
                **({"pipeline": pipeline} if pipeline else {}),
                "arrived_at": datetime.now(UTC).isoformat(),
                "source": str(source.resolve()),
                "content_sha256": digest,
                "modality": raw.modality,
                "classes": classes,
                "counts": counts,
                "input_shape": settings["input_shape"],
                "source_files": [
                    {"name": str(f.relative_to(source) if source.is_dir() else f.name), "sha256": sha256_file(f)}
                    for f in raw.files
                ],
                "files": {name: sha256_file(staging / name) for name in parts},
                "sample_sha256": {
                    part: [d for d, t in zip(digests, test.tolist()) if t == (part == "test")]
                    for part in ("train", "test")
                },
                "dropped_samples": dropped.count,
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            store.batches_dir.mkdir(parents=True, exist_ok=True)
            if not existing:
                store.write_settings(settings)
            os.rename(staging, store.batches_dir / batch_id)  # the one step that makes the batch visible
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return IngestResult(
        stream,
        batch_id,
        duplicate=False,
        classes=classes,
        counts=counts,
        path=str(store.batches_dir / batch_id),
        dropped=dropped.count,
        dropped_from=dropped.batch_ids,
    )


def related_batches(store: StreamStore, pipeline: str | None) -> list:
    """The batches of the other streams bound to the same pipeline: its retraining learns from them all."""
    bound = pipeline or (stream_settings(store) or {}).get("pipeline")
    if not bound:
        return []
    return [b for key, b in pipeline_batches(store.root, bound) if not key.startswith(f"{store.name}/")]
