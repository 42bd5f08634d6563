"""Stream store: ingest validates, splits, publishes atomically, and recognises duplicates."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import isolated_env
from PIL import Image

from pipelines.stream import StreamStore, ingest
from pipelines.stream.ingest import sha256_file
from pipelines.stream.readers import BatchError


def write_npz(path, classes=(0, 1), n=20, seed=0, shape=(8, 8)):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n * len(classes), *shape), dtype=np.uint8)
    y = np.repeat(np.array(classes), n)
    np.savez(path, inputs=x, labels=y)
    return x, y


def write_image_folder(root, classes=("cat", "dog"), n=5, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), mode="L").save(root / c / f"{i}.png")


def test_npz_batch_is_split_and_manifested(tmp_path):
    write_npz(tmp_path / "b.npz", classes=(3, 7), n=20)
    result = ingest(tmp_path / "b.npz", tmp_path / "store", "s1", test_fraction=0.25)
    assert not result.duplicate and result.classes == ["3", "7"]
    batch = StreamStore(tmp_path / "store", "s1").batches()[0]
    m = json.loads((batch.path / "manifest.json").read_text())
    assert m["counts"] == {"train": {"3": 15, "7": 15}, "test": {"3": 5, "7": 5}}
    assert set(m["files"]) == {"train.pt", "test.pt"} and len(m["source_files"]) == 1
    index = {"3": 0, "7": 1}
    train, test = batch.load("train", index), batch.load("test", index)
    assert len(train) == 30 and len(test) == 10 and train.x.shape[1:] == (1, 8, 8)
    assert float(train.x.max()) <= 1.0  # uint8 pixels scaled to [0, 1]


def test_image_folder_and_pt_file(tmp_path):
    write_image_folder(tmp_path / "imgs")
    r = ingest(tmp_path / "imgs", tmp_path / "store", "pics")
    assert r.classes == ["cat", "dog"] and sum(r.counts["train"].values()) + sum(r.counts["test"].values()) == 10
    torch.save(
        {"inputs": torch.rand(12, 1, 6, 6), "labels": torch.tensor([0, 1, 2] * 4), "classes": ["cat", "dog", "fox"]},
        tmp_path / "b.pt",
    )
    r2 = ingest(tmp_path / "b.pt", tmp_path / "store", "pics")
    assert r2.classes == ["cat", "dog", "fox"]
    assert len(StreamStore(tmp_path / "store", "pics").batches()) == 2


def test_duplicate_content_is_not_added_again(tmp_path):
    x, y = write_npz(tmp_path / "a.npz")
    first = ingest(tmp_path / "a.npz", tmp_path / "store", "s")
    np.savez(tmp_path / "renamed.npz", inputs=x, labels=y)  # same content under another name
    again = ingest(tmp_path / "renamed.npz", tmp_path / "store", "s")
    assert again.duplicate and again.batch_id == first.batch_id
    assert len(StreamStore(tmp_path / "store", "s").batches()) == 1
    write_npz(tmp_path / "b.npz", seed=1)
    assert not ingest(tmp_path / "b.npz", tmp_path / "store", "s").duplicate


def test_one_bad_image_rejects_the_whole_batch(tmp_path):
    write_image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "dog" / "3.png").write_bytes(b"not a png")
    with pytest.raises(BatchError, match="3.png"):
        ingest(tmp_path / "imgs", tmp_path / "store", "pics")
    assert StreamStore(tmp_path / "store", "pics").batches() == []


def test_ingest_killed_while_copying_leaves_nothing_and_a_retry_succeeds(tmp_path):
    """A real fault: SIGKILL an ingest as soon as its staging folder appears, while it writes a 50 MB batch (the
    store's own ingest: `kdflow ingest` adds only the pipeline's checks before it)."""
    write_npz(tmp_path / "big.npz", classes=(0, 1), n=6000, shape=(32, 32))  # 12,000 images, 49 MB as float32
    store = StreamStore(tmp_path / "store", "s")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pipelines.stream import ingest; ingest('big.npz', 'store', 's')"],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 600  # only against a hang; the kill itself waits for no clock
        while not (store.incoming_dir.exists() and any(store.incoming_dir.iterdir())):
            assert proc.poll() is None, (
                f"ingest ended before its staging folder was seen: {proc.stderr.read().decode()[-2000:]}"
            )
            assert time.monotonic() < deadline
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stderr.close()
    assert store.batches() == [] and not list(store.dir.rglob("batches/*/manifest.json"))
    assert (
        len(list(store.incoming_dir.iterdir())) == 1
    )  # killed mid-copy: its staging folder was left behind, unpublished
    again = ingest(tmp_path / "big.npz", tmp_path / "store", "s")
    assert not again.duplicate and [b.id for b in store.batches()] == [again.batch_id]
    assert list(store.incoming_dir.iterdir()) == []  # the retry cleared the dead ingest's staging folder
    batch = store.batches()[0]
    assert all(sha256_file(batch.path / name) == digest for name, digest in batch.manifest["files"].items())


def test_domain_incremental_rejects_unknown_class(tmp_path):
    write_npz(tmp_path / "a.npz", classes=(0, 1))
    ingest(tmp_path / "a.npz", tmp_path / "store", "d", scenario="domain-il")
    write_npz(tmp_path / "b.npz", classes=(1, 2), seed=1)
    with pytest.raises(BatchError, match=r"classes \['2'\] are not among"):
        ingest(tmp_path / "b.npz", tmp_path / "store", "d")
    write_npz(tmp_path / "c.npz", classes=(0, 1), seed=2, shape=(4, 4))
    with pytest.raises(BatchError, match="do not match stream"):
        ingest(tmp_path / "c.npz", tmp_path / "store", "d")
    assert len(StreamStore(tmp_path / "store", "d").batches()) == 1


def test_cli_ingest_rejects_an_unreadable_batch_in_one_line(tmp_path, kdflow):
    """The batch is read before anything else; duplicates through the CLI: tests/test_pipeline_retrain.py."""
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    proc, _ = kdflow("ingest", "bad.npz", "--pipeline", "s", "--store", "store")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "bad.npz cannot be read" in proc.stderr
    assert not (tmp_path / "store" / "streams" / "s").exists()
