"""Samples known by their content: one sha256 per image (its pixels) or text (its characters), never by file name.

A batch's manifest lists the digests of its train and test samples (`sample_sha256`); batches stored before that
field existed have theirs computed from their parts. Ingest drops every sample whose digest is already stored, so
renaming, re-ordering or re-exporting a batch adds nothing, and a test sample can never come back as training data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch

from pipelines.stream.readers import RawBatch
from pipelines.stream.store import StoredBatch


def image_digest(x: torch.Tensor) -> str:
    """One image as stored (float32, C x H x W): the same pixels give the same digest in any file or format."""
    h = hashlib.sha256(b"image\0" + str(tuple(x.shape)).encode() + b"\0")
    h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(b"text\0" + text.encode("utf-8")).hexdigest()


def sample_digests(raw: RawBatch) -> list[str]:
    if raw.texts is not None:
        return [text_digest(t) for t in raw.texts]
    return [image_digest(x) for x in raw.x.float()]


def stored_digests(batch: StoredBatch) -> list[str]:
    """The digests of every sample of a stored batch, train and test parts."""
    recorded = batch.manifest.get("sample_sha256")
    if recorded is not None:
        return recorded["train"] + recorded["test"]
    out = []
    for part in ("train", "test"):  # a batch from before per-sample digests: read its parts
        if batch.modality == "text":
            out += [text_digest(t) for t in batch.texts(part)[0]]
        else:
            blob = torch.load(batch.path / f"{part}.pt", map_location="cpu", weights_only=True)
            out += [image_digest(x) for x in blob["x"].float()]
    return out


@dataclass
class SampleIndex:
    """Which stored batch holds each known sample."""

    holder: dict[str, StoredBatch] = field(default_factory=dict)

    @classmethod
    def of(cls, batches: list[StoredBatch]) -> SampleIndex:
        index = cls()
        for b in batches:
            for d in stored_digests(b):
                index.holder.setdefault(d, b)
        return index

    def batch_of(self, digest: str) -> StoredBatch:
        return self.holder[digest]


@dataclass
class Dropped:
    count: int = 0  # samples left out of the new batch
    batch_ids: list[str] = field(default_factory=list)  # the stored batches that already hold some of them
    first_digest: str = ""


def drop_known_samples(raw: RawBatch, known: SampleIndex) -> tuple[RawBatch | None, list[str], Dropped]:
    """`raw` without the samples already stored (or repeated within it), the kept samples' digests, and what was
    dropped; None when no sample is new."""
    digests = sample_digests(raw)
    keep, seen, dropped = [], set(), Dropped()
    for i, d in enumerate(digests):
        if d in known.holder or d in seen:
            dropped.count += 1
            dropped.first_digest = dropped.first_digest or d
            holder = known.holder.get(d)
            if holder is not None and holder.id not in dropped.batch_ids:
                dropped.batch_ids.append(holder.id)
            continue
        seen.add(d)
        keep.append(i)
    if not keep:
        return None, [], dropped
    if len(keep) == len(digests):
        return raw, digests, dropped
    per_sample_files = len(raw.files) == len(digests)  # image or .txt folders: one file per sample
    kept = replace(
        raw,
        labels=[raw.labels[i] for i in keep],
        files=[raw.files[i] for i in keep] if per_sample_files else raw.files,
        x=None if raw.x is None else raw.x[torch.tensor(keep)],
        texts=None if raw.texts is None else [raw.texts[i] for i in keep],
    )
    return kept, [digests[i] for i in keep], dropped
