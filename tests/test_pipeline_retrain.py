"""One model, one lifecycle: a pipeline's champion learns ingested batches, and moves only through the decision."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY
from sklearn.datasets import load_digits

from flows.cli import main
from pipelines.lifelong.continual import pipeline_lock, retrain_pipeline
from pipelines.lifelong.promotion import lifecycle_decision

NAME = "kdflow-digits-student"


def write_digits_batch(path, start: int, n: int, shift: tuple[int, int]):
    """New digit images: sklearn's, moved by `shift` pixels (rows, columns), as 8-bit pixels in a .npz file."""
    d = load_digits()
    images = np.roll(d.images[start : start + n], shift, axis=(1, 2))
    np.savez(path, inputs=np.round(images * 255 / 16).astype(np.uint8), labels=d.target[start : start + n])


@pytest.fixture
def in_store(tmp_path, monkeypatch):
    """In-process `kdflow` calls against the store the subprocess `kdflow run` made in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    return tmp_path


def retrain(tmp_path, *options) -> dict:
    out = tmp_path / "retrain.json"
    assert main(["retrain", "--pipeline", "digits", "--output", str(out), *options]) == 0
    return json.loads(out.read_text())[0]


def blocked_on(lock_file: Path) -> bool:
    """Someone is waiting for flock(lock_file): Linux lists each blocked request in /proc/locks with '->'."""
    inode = f":{lock_file.stat().st_ino} "
    return any(
        "->" in line and "FLOCK" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
    )


def test_a_stream_without_a_pipeline_is_refused_in_one_sentence(tmp_path, in_store, capsys):
    """The per-stream model is retired: its commands point to --pipeline, before any work."""
    write_digits_batch(tmp_path / "b.npz", 0, 50, (0, 1))
    assert main(["ingest", str(tmp_path / "b.npz"), "--stream", "cams"]) == 1
    assert (
        capsys.readouterr().err
        == "kdflow ingest: name the pipeline whose champion learns this batch: --pipeline NAME\n"
    )
    assert main(["retrain", "--stream", "cams"]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "--stream cams: a stream has no model of its own" in err and "--pipeline NAME" in err
    )
    assert not (tmp_path / "mlruns" / "streams").exists()  # nothing stored


def test_no_champion_is_refused_at_ingest_and_retrain(tmp_path, in_store, capsys):
    write_digits_batch(tmp_path / "b.npz", 0, 50, (0, 1))
    assert main(["ingest", str(tmp_path / "b.npz"), "--pipeline", "digits"]) == 1
    assert "run `kdflow run --preset digits` first" in capsys.readouterr().err
    assert main(["retrain", "--pipeline", "digits"]) == 1
    assert "run `kdflow run --preset digits` first" in capsys.readouterr().err
    assert not (tmp_path / "mlruns" / "streams" / "digits").exists()  # nothing stored


def test_batches_retrain_the_pipeline_champion_through_the_decision(kdflow, tmp_path, in_store, capsys):
    proc, summary = kdflow("run", "--preset", "digits", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    # a batch that does not fit the champion's model is refused at ingest, with one sentence
    np.savez(tmp_path / "rgb.npz", inputs=np.zeros((20, 3, 8, 8), np.uint8), labels=np.arange(20) % 10)
    assert main(["ingest", str(tmp_path / "rgb.npz"), "--pipeline", "digits"]) == 1
    err = capsys.readouterr().err
    assert "(3, 8, 8) do not fit pipeline 'digits'" in err and "(1, 8, 8)" in err

    write_digits_batch(tmp_path / "b1.npz", 0, 300, (0, 1))
    assert main(["ingest", str(tmp_path / "b1.npz"), "--pipeline", "digits"]) == 0
    assert "for pipeline digits" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "b1.npz"), "--pipeline", "digits"]) == 0  # the same content again
    assert capsys.readouterr().out.startswith("duplicate:")

    # a retraining killed while learning changes nothing: no version, the same champion; the next one learns it
    def kill(key):
        raise RuntimeError(f"killed while learning {key}")

    with pytest.raises(RuntimeError, match="killed"):
        retrain_pipeline("digits", "mlruns", {"mode": "student_only"}, on_batch=kill)
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    # a decision no version can pass: registered, learned batch recorded, champion kept
    refused = retrain(tmp_path, "--tolerance", "-1")
    assert refused["status"] == "retrained" and not refused["promoted"], refused["reason"]
    assert refused["version"] == "2" and refused["champion_version"] == "1"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["kdflow.learned_batches"] == refused["learned_batches"][0] and v2.tags["kdflow.base_version"] == "1"
    assert set(refused["part_accuracies"]) == {"original", refused["learned_batches"][0]}
    assert len(refused["matrix"]) == 2 and len(refused["matrix"][-1]) == 2  # champion row, then after the batch
    registered = summary["models"][summary["registered"]["role"]]  # the gate may register the labels-only student
    assert abs(refused["champion_part_accuracies"]["original"] - registered["test_acc"]) < 1e-6
    # a version the decision refused is not built again from the same champion, batches and settings
    again = retrain(tmp_path, "--tolerance", "-1")
    assert again["status"] == "already-tried" and again["version"] == "2" and not again["promoted"]
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 2

    # the same champion, the same batch, a tolerance that accepts: a new version becomes the champion
    accepted = retrain(tmp_path, "--tolerance", "1", "--mode", "student_only")
    assert accepted["promoted"] and accepted["version"] == "3"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "3"

    # a second batch: the same registered model learns it on top of the first, from v3's lineage
    write_digits_batch(tmp_path / "b2.npz", 300, 300, (1, 0))
    assert main(["ingest", str(tmp_path / "b2.npz"), "--pipeline", "digits"]) == 0
    second = retrain(tmp_path)
    assert second["version"] == "4" and len(second["learned_batches"]) == 2
    assert second["learned_batches"][0] == accepted["learned_batches"][0]
    v4 = client.get_model_version(NAME, "4")
    assert v4.tags["kdflow.learned_batches"].split(",") == second["learned_batches"]
    # its model card: what it learned since v3, each test part against v3 re-scored, and the decision
    assert v4.description.startswith("# digits: retrained from v3")
    assert all(f"| {part} |" in v4.description for part in ["original", *second["learned_batches"]])
    assert "**Promotion:** v4 is" in v4.description
    assert v4.tags["kdflow.base_version"] == "3"
    parts = second["part_accuracies"]
    champion = second["champion_part_accuracies"]
    lineage_best = max(float(client.get_model_version(NAME, v).tags["test_acc"]) for v in ("1", "3"))
    expected = lifecycle_decision(
        parts["original"],
        max(lineage_best, champion["original"]),
        sum(parts.values()) / len(parts),
        sum(champion.values()) / len(champion),
        "3",
        0.02,
    )
    assert second["promoted"] == expected[0]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == ("4" if expected[0] else "3")
    assert parts["original"] > 0.5  # it still reads digits through the champion's own input view

    # one retraining per pipeline at a time: a second one waits for the pipeline's lock, another pipeline's is free
    results = {}
    with pipeline_lock("mlruns", "digits"):
        waiting = threading.Thread(target=lambda: results.update(second=retrain(tmp_path)), daemon=True)
        waiting.start()
        deadline = time.monotonic() + 600  # only keeps a failing test from hanging
        while not blocked_on(tmp_path / "mlruns" / "pipelines" / "digits" / ".retrain.lock"):
            assert waiting.is_alive() and time.monotonic() < deadline, results
            time.sleep(0.01)
        with pipeline_lock("mlruns", "other"):  # not blocked by digits' lock
            pass
        assert "second" not in results
    waiting.join(timeout=600)
    # it went on once the lock was free, found nothing new, and registered nothing
    assert results["second"]["status"] in ("up-to-date", "already-tried")
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 4


def test_retrain_pipeline_form_is_typed_and_the_event_names_the_pipeline():
    from flows.deployments import DEPLOYMENTS, runner_deployments

    deployment = runner_deployments([d for d in DEPLOYMENTS if d.name == "retrain-pipeline"])[0]
    schema = deployment._parameter_openapi_schema.model_dump()
    assert set(schema["properties"]) == {"pipeline", "store_dir", "retrain"}  # no raw JSON settings box
    section = schema["definitions"]["RetrainSectionOverrides"]["properties"]
    assert section["strategy"]["enum"] == ["derpp", "finetune", "joint", "lwf"]  # a plain choice, no null toggle
    derpp = schema["definitions"]["DERppConfigOverrides"]["properties"]  # each strategy's options, from its file
    assert derpp["buffer_size"]["description"] and "lwf" in section and "finetune" not in section
    assert section["tolerance"]["description"]
    (trigger,) = deployment.triggers
    assert trigger.expect == {"kdflow.data.arrived"}
    assert trigger.parameters["pipeline"] == "{{ event.payload.pipeline }}"
    assert deployment.schedules[0].schedule.cron == "0 3 * * *"  # nightly, every pipeline with unlearned batches
    assert [d.name for d in DEPLOYMENTS] == ["distill-pipeline", "retrain-pipeline"]  # one retraining deployment
