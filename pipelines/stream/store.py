"""Where stream batches live: `<store>/streams/<name>/batches/<id>/{train.pt,test.pt,manifest.json}`
(texts: `train.jsonl` and `test.jsonl` instead of the .pt files).

A batch directory appears by one atomic rename of a complete directory, so any directory under
`batches/` is whole; nothing in it is ever changed afterwards.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from kdcore.data.bundle import Split
from kdcore.text.tokenizer import Tokenizer

SCENARIOS = ("class-il", "domain-il", "more-data")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class StreamError(ValueError):
    """A stream request that cannot be served; the message names the input and the fix."""


@dataclass(frozen=True)
class StoredBatch:
    id: str
    path: Path
    manifest: dict

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]

    @property
    def modality(self) -> str:
        return self.manifest.get("modality", "image")  # batches from before text ingest hold images

    def texts(self, part: str) -> tuple[list[str], list[str]]:
        """(texts, class names) of the `train` or `test` part of a text batch."""
        lines = (self.path / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line]
        return [r["text"] for r in records], [r["label"] for r in records]

    def load(self, part: str, class_index: dict[str, int], tokenizer: Tokenizer | None = None) -> Split:
        """The `train` or `test` part as tensors, labels mapped to the stream-wide class indices.

        Texts become token ids of `tokenizer` (the model's fixed vocabulary; unknown words are <unk>),
        padded to its `max_len`, so every batch of a stream has the same input shape.
        """
        if self.modality == "text":
            if tokenizer is None:
                raise StreamError(f"batch {self.id} holds texts; loading it needs the model's tokenizer")
            texts, labels = self.texts(part)
            ids, _ = tokenizer.encode(texts, length=tokenizer.max_len)
            return Split(ids, torch.tensor([class_index[c] for c in labels], dtype=torch.long))
        blob = torch.load(self.path / f"{part}.pt", map_location="cpu", weights_only=True)
        to_global = torch.tensor([class_index[c] for c in self.classes], dtype=torch.long)
        return Split(blob["x"], to_global[blob["y"]])


class StreamStore:
    def __init__(self, root: str | Path, stream: str):
        if not _NAME.match(stream):
            raise StreamError(
                f"stream name {stream!r} must be letters, digits, '-' or '_' (at most 64); pick another name"
            )
        self.root, self.name = Path(root).resolve(), stream
        self.dir = self.root / "streams" / stream
        self.batches_dir = self.dir / "batches"
        self.incoming_dir = self.dir / ".incoming"  # same filesystem as batches/, so rename is atomic

    def settings(self) -> dict | None:
        path = self.dir / "stream.json"
        return json.loads(path.read_text()) if path.exists() else None

    def write_settings(self, settings: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "stream.json.tmp"
        tmp.write_text(json.dumps(settings, indent=2))
        os.replace(tmp, self.dir / "stream.json")

    def batches(self) -> list[StoredBatch]:
        """Every complete batch, in arrival order (ids start with a sequence number)."""
        if not self.batches_dir.exists():
            return []
        out = []
        for d in sorted(self.batches_dir.iterdir()):
            manifest = d / "manifest.json"
            if d.is_dir() and manifest.exists():
                out.append(StoredBatch(d.name, d, json.loads(manifest.read_text())))
        return out

    @contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """An exclusive per-stream lock (flock: released by the OS even if the holder is killed)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f".{purpose}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def stream_names(store_root: str | Path) -> list[str]:
    streams = Path(store_root).resolve() / "streams"
    return sorted(p.name for p in streams.iterdir() if p.is_dir() and _NAME.match(p.name)) if streams.exists() else []


def pipeline_batches(store_root: str | Path, pipeline: str) -> list[tuple[str, StoredBatch]]:
    """Every batch of the streams bound to `pipeline`, in arrival order, keyed `stream/batch-id` (store-unique)."""
    out = []
    for name in stream_names(store_root):
        store = StreamStore(store_root, name)
        if (store.settings() or {}).get("pipeline") == pipeline:
            out += [(f"{name}/{b.id}", b) for b in store.batches()]
    return sorted(out, key=lambda kb: (kb[1].manifest.get("arrived_at", ""), kb[0]))
