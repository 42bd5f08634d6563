"""The retraining stage against a real SQLite MLflow store: learned batches, persisted buffer, gating, crash safety."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from test_lifelong_core import blob_stream

from pipelines.lifelong import RetrainConfig, promotion_decision, retrain_stream
from pipelines.lifelong.state import LifelongState
from pipelines.stream import StreamStore, ingest


def test_promotion_decision_both_ways():
    assert promotion_decision(0.5, None, None, 0.0) == (True, "no champion yet")
    ok, reason = promotion_decision(0.79, 0.80, "3", 0.02)
    assert ok and reason.startswith("promoted") and "v3" in reason
    ok, reason = promotion_decision(0.77, 0.80, "3", 0.02)
    assert not ok and reason.startswith("kept champion")


def write_batches(tmp_path: Path) -> list[Path]:
    paths = []
    for i, (train, test) in enumerate(blob_stream()):
        p = tmp_path / f"batch{i}.npz"
        np.savez(p, inputs=torch.cat([train.x, test.x]).numpy(), labels=torch.cat([train.y, test.y]).numpy())
        paths.append(p)
    return paths


def champion(cfg):
    return mlflow.MlflowClient().get_model_version_by_alias(cfg.registered_name, "champion")


def test_retraining_learns_new_batches_and_gates_promotion(tmp_path):
    b0, b1, b2 = write_batches(tmp_path)
    store = tmp_path / "store"
    cfg = RetrainConfig(
        stream="blobs",
        store_dir=str(store),
        strategy="derpp",
        epochs=3,
        lr=0.05,
        buffer_size=60,
        teacher_width=32,
        student_width=16,
    )
    assert retrain_stream(cfg).status == "no-data"
    ids = [ingest(b, store, "blobs").batch_id for b in (b0, b1)]

    first = retrain_stream(cfg)
    assert first.status == "retrained" and first.promoted and first.reason == "no champion before"
    assert first.learned_batches == ids and len(first.matrix) == 2 and np.isnan(first.matrix[0][1])
    v1 = champion(cfg)
    assert v1.tags["kdflow.learned_batches"] == ",".join(ids)
    assert float(v1.tags["kdflow.avg_acc"]) == pytest.approx(first.metrics["avg_acc"])
    run = mlflow.get_run(v1.run_id)
    assert {"lifelong/avg_acc", "lifelong/forgetting", "lifelong/bwt"} <= set(run.data.metrics)
    assert int(run.data.params["runtime.threads_used"]) >= 1  # its share of the host, beside any run (issue 17)
    history = mlflow.MlflowClient().get_metric_history(v1.run_id, "lifelong/avg_acc")
    assert [m.step for m in history] == [0, 1]  # one value per learned batch
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(v1.run_id, "lifelong")}
    assert {"lifelong/state.pt", "lifelong/accuracy_matrix.png", "lifelong/accuracy_matrix.json"} <= artifacts
    state = LifelongState.load(
        Path(mlflow.artifacts.download_artifacts(run_id=v1.run_id, artifact_path="lifelong/state.pt")),
        "derpp",
        cfg.strategy_options(),
    )
    assert state.student_strategy.buffer.seen == 3 * (240 + 240)  # 3 epochs over each batch's 240 train examples
    assert len(state.student_strategy.buffer) == 60 and state.teacher is not None

    assert retrain_stream(cfg).status == "up-to-date"  # idempotent: nothing new, nothing done

    ids.append(ingest(b2, store, "blobs").batch_id)
    strict = retrain_stream(cfg.model_copy(update={"tolerance": -0.5}))  # demands +50 points: must be refused
    assert strict.status == "retrained" and not strict.promoted and strict.reason.startswith("kept champion")
    assert champion(cfg).version == v1.version
    assert len(strict.matrix) == 3 and len(strict.matrix[2]) == 3
    # the head grew from 4 to 6 outputs and the old ones were kept: old batches still scored
    assert strict.matrix[2][0] > 0.5

    again = retrain_stream(cfg.model_copy(update={"tolerance": -0.5}))
    assert again.status == "already-tried" and not again.promoted  # no second identical retraining
    # the gate compares with the champion scored on the same test parts, the new batch included
    champion_avg = mlflow.get_run(strict.run_id).data.metrics["champion/avg_acc"]
    assert champion_avg < strict.metrics["avg_acc"]  # v1 never saw classes 4 and 5
    lenient = retrain_stream(cfg.model_copy(update={"tolerance": 0.02}))
    assert lenient.status == "already-tried" and lenient.promoted
    assert lenient.reason.endswith(
        "; " + promotion_decision(strict.metrics["avg_acc"], champion_avg, str(v1.version), 0.02)[1]
    )
    assert str(champion(cfg).version) == strict.version
    assert champion(cfg).tags["kdflow.learned_batches"] == ",".join(ids)


def test_crash_leaves_champion_and_buffer_and_next_run_resumes(tmp_path):
    b0, b1, _ = write_batches(tmp_path)
    store = tmp_path / "store"
    cfg = RetrainConfig(
        stream="s",
        store_dir=str(store),
        strategy="derpp",
        mode="student_only",
        epochs=2,
        lr=0.05,
        buffer_size=40,
        student_width=16,
    )
    ingest(b0, store, "s")
    assert retrain_stream(cfg).promoted
    before = champion(cfg)
    second = ingest(b1, store, "s").batch_id

    def crash(batch_id):
        raise RuntimeError(f"killed while learning {batch_id}")

    with pytest.raises(RuntimeError, match="killed"):
        retrain_stream(cfg, on_batch=crash)
    after = champion(cfg)
    assert after.version == before.version and after.tags == before.tags
    assert len(mlflow.MlflowClient().search_model_versions(f"name = '{cfg.registered_name}'")) == 1
    resumed = retrain_stream(cfg)
    assert resumed.status == "retrained" and resumed.new_batches == [second]
    state = LifelongState.load(
        Path(mlflow.artifacts.download_artifacts(run_id=champion(cfg).run_id, artifact_path="lifelong/state.pt")),
        "derpp",
        cfg.strategy_options(),
    )
    assert state.teacher is None and state.student_strategy.buffer.seen == 2 * 240 * 2  # continued from v1's buffer


def blocked_on(lock_file: Path) -> bool:
    """Someone is waiting for flock(lock_file): Linux lists each blocked request in /proc/locks with '->'."""
    inode = f":{lock_file.stat().st_ino} "
    return any(
        "->" in line and "FLOCK" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_one_retraining_at_a_time_per_stream(tmp_path):
    b0, b1, _ = write_batches(tmp_path)
    store = tmp_path / "store"
    ingest(b0, store, "a")
    ingest(b1, store, "b")
    cfg_a = RetrainConfig(
        stream="a", store_dir=str(store), strategy="finetune", mode="student_only", epochs=1, student_width=8
    )
    cfg_b = cfg_a.model_copy(update={"stream": "b"})
    learned, release, results = threading.Event(), threading.Event(), {}

    def hold(batch_id):  # the first retraining of stream a stops after learning, still holding a's lock
        learned.set()
        release.wait(timeout=600)  # the timeout only keeps a failing test from hanging

    def run(key, cfg, **options):
        try:
            results[key] = retrain_stream(cfg, **options)
        except BaseException as e:  # reported by the asserts below
            results[key] = e

    first = threading.Thread(target=run, args=("first", cfg_a), kwargs={"on_batch": hold}, daemon=True)
    second = threading.Thread(target=run, args=("second", cfg_a), daemon=True)
    try:
        first.start()
        assert learned.wait(timeout=600), results
        second.start()
        deadline = time.monotonic() + 600
        while not blocked_on(
            StreamStore(store, "a").dir / ".retrain.lock"
        ):  # the second retraining of a waits for the lock
            assert second.is_alive() and time.monotonic() < deadline, results
            time.sleep(0.01)
        other = retrain_stream(cfg_b)  # meanwhile stream b retrains: different streams do not block each other
        assert other.status == "retrained" and other.promoted
        assert second.is_alive() and "second" not in results  # still waiting on a
    finally:
        release.set()
        first.join(timeout=600)
        second.join(timeout=600)
    assert results["first"].status == "retrained" and results["first"].promoted, results
    # the waiting run went on after the first finished, found its work done, and built no second model
    assert results["second"].status == "up-to-date", results
    assert len(mlflow.MlflowClient().search_model_versions(f"name = '{cfg_a.registered_name}'")) == 1
