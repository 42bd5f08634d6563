"""`kdflow ingest`: validate a batch, split off its test part, and publish it to the stream in one rename."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from pipelines.stream.readers import BatchError, RawBatch, read_batch
from pipelines.stream.store import SCENARIOS, StreamError, StreamStore


@dataclass
class IngestResult:
    stream: str
    batch_id: str
    duplicate: bool
    classes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    path: str = ""


def content_digest(raw: RawBatch) -> str:
    """The same examples with the same labels give the same digest, whatever the file names or format."""
    h = hashlib.sha256()
    h.update(str(tuple(raw.x.shape)).encode())
    h.update(raw.x.numpy().tobytes())
    h.update("\n".join(raw.labels).encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def check_fits_stream(store: StreamStore, raw: RawBatch, scenario: str) -> dict:
    """The stream's settings (created by its first batch); rejects a batch that does not fit them."""
    settings = store.settings()
    classes = sorted(set(raw.labels))
    if settings is None:
        return {"name": store.name, "scenario": scenario, "input_shape": list(raw.x.shape[1:]), "classes": classes}
    if list(raw.x.shape[1:]) != settings["input_shape"]:
        raise BatchError(f"inputs of shape {tuple(raw.x.shape[1:])} do not match stream {store.name!r} ({tuple(settings['input_shape'])}); convert them or use another stream")
    if settings["scenario"] != "class-il":
        unknown = [c for c in classes if c not in settings["classes"]]
        if unknown:
            raise BatchError(f"classes {unknown} are not among stream {store.name!r}'s classes {settings['classes']} "
                             f"({settings['scenario']} keeps the same classes); relabel them or ingest into a class-il stream")
    return settings


def ingest(source: str | Path, store_root: str | Path, stream: str, scenario: str = "class-il",
           test_fraction: float = 0.2, _before_publish=None) -> IngestResult:
    """Add `source` to `stream` as one immutable batch; a duplicate of an existing batch adds nothing."""
    if scenario not in SCENARIOS:
        raise StreamError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    if not 0 < test_fraction < 1:
        raise StreamError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    source = Path(source)
    raw = read_batch(source)  # validates every file before anything is written
    store = StreamStore(store_root, stream)
    digest = content_digest(raw)
    with store.lock("ingest"):
        settings = check_fits_stream(store, raw, scenario)
        existing = store.batches()
        for b in existing:
            if b.manifest["content_sha256"] == digest:
                return IngestResult(stream, b.id, duplicate=True, classes=b.classes, counts=b.manifest["counts"], path=str(b.path))
        batch_id = f"{len(existing) + 1:05d}-{digest[:12]}"
        classes = sorted(set(raw.labels))
        y = torch.tensor([classes.index(c) for c in raw.labels], dtype=torch.long)
        test = split_test_part(raw.labels, test_fraction, seed=int(digest[:8], 16))
        counts = {part: dict(sorted(Counter(c for c, t in zip(raw.labels, test.tolist()) if t == (part == "test")).items()))
                  for part in ("train", "test")}
        store.incoming_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{batch_id}.", dir=store.incoming_dir))
        try:
            torch.save({"x": raw.x[~test].clone(), "y": y[~test].clone()}, staging / "train.pt")
            torch.save({"x": raw.x[test].clone(), "y": y[test].clone()}, staging / "test.pt")
            manifest = {
                "id": batch_id,
                "stream": stream,
                "arrived_at": datetime.now(timezone.utc).isoformat(),
                "source": str(source.resolve()),
                "content_sha256": digest,
                "classes": classes,
                "counts": counts,
                "input_shape": list(raw.x.shape[1:]),
                "source_files": [{"name": str(f.relative_to(source) if source.is_dir() else f.name), "sha256": sha256_file(f)}
                                 for f in raw.files],
                "files": {name: sha256_file(staging / name) for name in ("train.pt", "test.pt")},
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
            if _before_publish is not None:  # fault injection for tests: a crash before the rename
                _before_publish(staging)
            store.batches_dir.mkdir(parents=True, exist_ok=True)
            if store.settings() is None:
                store.write_settings(settings)
            os.rename(staging, store.batches_dir / batch_id)  # the one step that makes the batch visible
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return IngestResult(stream, batch_id, duplicate=False, classes=classes, counts=counts, path=str(store.batches_dir / batch_id))
