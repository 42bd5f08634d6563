"""Ingest knows samples by content, one by one: a renamed, re-ordered or partly new batch stores only its new samples,
and a sample held out in any batch's test part never lands in a training part."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from pipelines.stream import StreamStore, ingest
from tests.conftest import TINY, isolated_env


def write_images(root, pixels: np.ndarray, names: list[str]):
    for img, name in zip(pixels, names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(root / name)


def random_pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6), dtype=np.uint8)


def part_contents(store: StreamStore, part: str) -> list[bytes]:
    """Every sample of every batch's `part`, read from the stored files (not from the manifests)."""
    out = []
    for b in store.batches():
        if b.modality == "text":
            out += [t.encode() for t in b.texts(part)[0]]
        else:
            out += [x.numpy().tobytes() for x in b.load(part, {c: i for i, c in enumerate(b.classes)}).x]
    return out


def assert_no_sample_stored_twice(store: StreamStore):
    train, test = part_contents(store, "train"), part_contents(store, "test")
    assert len(set(train + test)) == len(train) + len(test)  # in particular no test sample in a training part


def test_renaming_one_image_stores_nothing_new(tmp_path):
    pixels = random_pixels(10, seed=0)
    names = [f"{'cat' if i < 5 else 'dog'}/{i}.png" for i in range(10)]
    write_images(tmp_path / "imgs", pixels, names)
    first = ingest(tmp_path / "imgs", tmp_path / "store", "s")
    (tmp_path / "imgs" / "cat" / "0.png").rename(tmp_path / "imgs" / "cat" / "renamed.png")
    again = ingest(tmp_path / "imgs", tmp_path / "store", "s")
    assert again.duplicate and again.batch_id == first.batch_id and again.dropped == 10
    assert len(StreamStore(tmp_path / "store", "s").batches()) == 1


def test_reordered_npz_stores_nothing_new(tmp_path):
    x, y = random_pixels(40, seed=1), np.repeat([0, 1], 20)
    np.savez(tmp_path / "a.npz", inputs=x, labels=y)
    ingest(tmp_path / "a.npz", tmp_path / "store", "s")
    order = np.random.default_rng(2).permutation(40)
    np.savez(tmp_path / "b.npz", inputs=x[order], labels=y[order])
    assert ingest(tmp_path / "b.npz", tmp_path / "store", "s").duplicate
    assert len(StreamStore(tmp_path / "store", "s").batches()) == 1


def test_partial_overlap_stores_only_the_new_samples(tmp_path):
    old, new = random_pixels(40, seed=3), random_pixels(20, seed=4)
    np.savez(tmp_path / "a.npz", inputs=old, labels=np.repeat([0, 1], 20))
    ingest(tmp_path / "a.npz", tmp_path / "store", "s", test_fraction=0.5)
    mixed = np.concatenate([new, old[::-1], new[:3]])  # 20 new, the 40 old re-ordered, 3 repeated within the batch
    np.savez(tmp_path / "b.npz", inputs=mixed, labels=np.array([0, 1] * 10 + [1] * 20 + [0] * 20 + [0, 1, 0]))
    r = ingest(tmp_path / "b.npz", tmp_path / "store", "s", test_fraction=0.5)
    assert not r.duplicate and r.dropped == 43
    assert sum(r.counts["train"].values()) + sum(r.counts["test"].values()) == 20
    store = StreamStore(tmp_path / "store", "s")
    assert len(store.batches()) == 2
    assert_no_sample_stored_twice(store)


def test_batches_stored_before_sample_digests_are_read_from_their_parts(tmp_path):
    x = random_pixels(20, seed=5)
    np.savez(tmp_path / "a.npz", inputs=x, labels=np.repeat([0, 1], 10))
    ingest(tmp_path / "a.npz", tmp_path / "store", "s")
    batch = StreamStore(tmp_path / "store", "s").batches()[0]
    manifest = json.loads((batch.path / "manifest.json").read_text())
    del manifest["sample_sha256"]  # as an older kdflow wrote it
    (batch.path / "manifest.json").write_text(json.dumps(manifest))
    np.savez(tmp_path / "b.npz", inputs=x[::-1], labels=np.repeat([1, 0], 10))
    assert ingest(tmp_path / "b.npz", tmp_path / "store", "s").duplicate


def write_jsonl(path, records):
    path.write_text("".join(json.dumps({"text": t, "label": c}) + "\n" for t, c in records))


def text_records(n: int, tag: str) -> list[tuple[str, str]]:
    return [
        (f"review {tag} {i} " + hashlib.sha256(f"{tag}{i}".encode()).hexdigest(), "pos" if i % 2 else "neg")
        for i in range(n)
    ]


def test_texts_reordered_or_partly_new_store_only_new_texts(tmp_path):
    old = text_records(20, "old")
    write_jsonl(tmp_path / "a.jsonl", old)
    ingest(tmp_path / "a.jsonl", tmp_path / "store", "t", test_fraction=0.5)
    write_jsonl(tmp_path / "b.jsonl", old[::-1])
    assert ingest(tmp_path / "b.jsonl", tmp_path / "store", "t").duplicate
    write_jsonl(tmp_path / "c.jsonl", text_records(6, "new") + old[5:15])
    r = ingest(tmp_path / "c.jsonl", tmp_path / "store", "t", test_fraction=0.5)
    assert not r.duplicate and r.dropped == 10
    store = StreamStore(tmp_path / "store", "t")
    assert len(store.batches()) == 2
    assert_no_sample_stored_twice(store)


def test_cli_reports_dropped_samples_in_one_line_and_nothing_new(tmp_path, kdflow):
    proc, _ = kdflow("run", "--preset", "digits", *TINY)  # a batch is ingested for a pipeline with a champion
    assert proc.returncode == 0, proc.stderr[-3000:]
    pixels = random_pixels(12, seed=6)
    write_images(tmp_path / "a", pixels[:8], [f"{'x' if i % 2 else 'y'}/{i}.png" for i in range(8)])
    write_images(tmp_path / "b", pixels[4:], [f"{'x' if i % 2 else 'y'}/n{i}.png" for i in range(8)])
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "--pipeline", "digits", "--stream", "s"]
    env = isolated_env(tmp_path)
    run = lambda folder: subprocess.run(  # noqa: E731
        [*cmd, str(tmp_path / folder)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run("a").returncode == 0
    second = run("b")
    assert second.returncode == 0, second.stderr
    assert [line for line in second.stdout.splitlines() if line.startswith("dropped 4 sample(s)")]
    third = run("b")
    assert third.returncode == 0 and third.stdout.startswith("duplicate: every sample of")
    assert len(StreamStore(tmp_path / "mlruns", "s").batches()) == 2
