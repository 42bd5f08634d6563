"""The evidence of why one distils, on the runs and the registry: size, latency and throughput side by side, the
ONNX export with its parity check, the model card, per-class figures, Optuna's plots and the dataset input.

One tiny digits pipeline run (the real CLI, module-scoped) is checked by several tests; the export paths that need
no pipeline (a CIFAR-size ResNet, a text model, a model ONNX cannot take) are in tests/test_onnx_export.py."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import onnxruntime as ort
import pytest
import torch

from kdcore.datasets import load_dataset
from kdcore.models import build_model
from pipelines.cache.checkpoint import load_model, save_atomic, save_model
from pipelines.config.schema import ConfigError, PipelineConfig, validate
from pipelines.registry.onnx_export import ERROR_TAG, PARITY_GOAL
from pipelines.results import PreparedData, TrainedModel
from pipelines.stages import evaluate_models
from pipelines.tracking.summary import evidence_sentence
from tests.conftest import TINY, isolated_env

NAME = "kdflow-digits-student"
ROLES = ("teacher", "baseline", "student")


def cli(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=folder,
        env=isolated_env(folder),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`kdflow run` on tiny settings, timing capped at 0.3 s per model: (folder, summary, stdout, MLflow client)."""
    folder = tmp_path_factory.mktemp("evidence")
    proc = cli(folder, "run", *TINY, "--set", "evaluate.timing_seconds=0.3", "--output", "summary.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return folder, json.loads((folder / "summary.json").read_text()), proc.stdout, client


def test_the_evaluation_run_measures_size_latency_and_throughput_side_by_side(digits_run):
    _, summary, stdout, client = digits_run
    evaluation = client.get_run(summary["mlflow"]["evaluation_run_id"])
    metrics = evaluation.data.metrics
    for role in ROLES:
        facts = summary["models"][role]
        assert metrics[f"size/{role}_mb"] == facts["size_mb"]
        assert metrics[f"latency/{role}_ms_median"] == facts["latency_ms"] > 0
        assert metrics[f"latency/{role}_ms_p95"] == facts["latency_p95_ms"] >= facts["latency_ms"]
        assert metrics[f"throughput/{role}_per_s"] == facts["throughput"] > 0
        # float32 weights: 4 bytes a parameter, plus the saving overhead (names, zip entries, batch-norm statistics)
        assert 4 * facts["parameters"] <= 1e6 * facts["size_mb"] <= 4.04 * facts["parameters"] + 10_000
    teacher, student = summary["models"]["teacher"], summary["models"]["student"]
    evidence = summary["evidence"]
    assert evidence["size_ratio"] == pytest.approx(metrics["ratio/size"])
    # so the size ratio is the parameter ratio, up to that overhead
    low = 4 * teacher["parameters"] / (4.04 * student["parameters"] + 10_000)
    assert low <= evidence["size_ratio"] <= (4.04 * teacher["parameters"] + 10_000) / (4 * student["parameters"])
    assert evidence["latency_ratio"] == pytest.approx(teacher["latency_ms"] / student["latency_ms"])
    assert evidence["acc_points"] == pytest.approx(100 * (teacher["test_acc"] - student["test_acc"]))
    # absolute times carry the device they were measured on
    assert evaluation.data.params["evaluate.device_name"] == evidence["device_name"] != ""
    assert "torch threads" in evidence["device_name"]  # a CPU run says how many threads it had
    # the headline and the table columns, in the terminal
    assert f"the student is {evidence['size_ratio']:.1f}x smaller and {evidence['latency_ratio']:.1f}x faster" in (
        stdout.replace("\n", " ")
    )
    assert "MB" in stdout and "ms (p95)" in stdout and "/s @256" in stdout


def test_the_evaluation_run_holds_confusion_matrices_and_per_class_reports(digits_run):
    folder, summary, _, client = digits_run
    run_id = summary["mlflow"]["evaluation_run_id"]
    figures = {a.path for a in client.list_artifacts(run_id, "confusion")}
    assert figures == {f"confusion/{role}.png" for role in ROLES}
    for role in ROLES:
        table = json.loads(open(client.download_artifacts(run_id, f"classification/{role}.json"), "rb").read())
        rows = dict(zip([r[0] for r in table["data"]], table["data"]))
        assert table["columns"] == ["class", "precision", "recall", "f1", "support"]
        assert {str(d) for d in range(10)} <= set(rows) and rows["weighted avg"][4] == 360  # the test split
        text = open(client.download_artifacts(run_id, f"classification/{role}.txt")).read()
        assert "precision" in text and "macro avg" in text


def test_the_tuning_plots_and_the_dataset_are_on_the_runs(digits_run):
    _, summary, _, client = digits_run
    parent = summary["mlflow"]["parent_run_id"]
    plots = {a.path for a in client.list_artifacts(parent, "optuna")}
    assert {"optuna/optimization_history.png", "optuna/slice.png"} <= plots
    # importances need two complete trials in which a parameter varied; else the run says why not
    assert "optuna/param_importances.png" in plots or "optuna/plots_skipped.txt" in plots
    for run_id, context in ((parent, "train"), (summary["mlflow"]["evaluation_run_id"], "test")):
        (dataset_input,) = client.get_run(run_id).inputs.dataset_inputs
        assert dataset_input.dataset.name == "digits" and dataset_input.dataset.digest == summary["data_digest"]
        assert json.loads(dataset_input.dataset.profile) == {"train": 1167, "val": 270, "test": 360}
        assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == context


def test_the_registered_version_carries_an_onnx_export_with_parity_and_a_model_card(digits_run, tmp_path):
    folder, summary, _, client = digits_run
    version = client.get_model_version(NAME, summary["mlflow"]["version"])
    tags = version.tags
    assert tags["kdflow.onnx"] == "onnx/model.onnx" and ERROR_TAG not in tags
    assert float(tags["kdflow.onnx.max_abs_diff"]) <= PARITY_GOAL
    assert float(tags["kdflow.onnx.class_agreement"]) == 1.0 and tags["kdflow.onnx.parity"].startswith("pass")

    card = version.description
    for role in ROLES:
        facts = summary["models"][role]
        assert f"{facts['test_acc']:.2%}" in card and f"{facts['parameters']:,}" in card and facts["arch"] in card
    assert summary["data_digest"] in card and f"{summary['evidence']['size_ratio']:.1f}x smaller" in card
    assert f"{summary['kd_gain']['test']:+.2f} points" in card and "parity pass" in card
    assert f"**Promotion:** v{version.version} is **champion**" in card and summary["best_method"] in card

    out = tmp_path / "student.onnx"
    proc = cli(folder, "export", NAME, "--format", "onnx", "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{NAME} v{version.version} written to {out}" in proc.stdout
    notes = json.loads((tmp_path / "student.preprocessing.json").read_text())
    assert notes["classes"] == [str(d) for d in range(10)] and len(notes["mean"]) == 1
    # the file answers any batch size as the registered checkpoint does, on inputs prepared as the notes say
    bundle = load_dataset("digits", None, 0.15, 0.2, 0)
    mean, std = (torch.tensor(notes[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    x = (bundle.test.x[:5].float() * notes["scale"] - mean) / std
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    checkpoint = client.download_artifacts(tags["mlflow_run_id"], tags["kdflow.checkpoint"], str(tmp_path))
    with torch.no_grad():
        want = load_model(checkpoint)(x).numpy()
    assert got.shape == (5, 10) and np.abs(got - want).max() <= PARITY_GOAL

    proc = cli(folder, "export", f"{NAME}/99", "--output", str(tmp_path / "x.onnx"))
    assert proc.returncode == 1 and f"{NAME} has no version 99" in proc.stderr


def test_evaluate_timing_can_be_turned_off_and_sizes_follow_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("evidence")
    bundle = load_dataset("digits", None, 0.15, 0.2, 0)
    path = save_atomic(bundle.state_dict(), tmp_path / "digits.pt")
    data = PreparedData(path=str(path), digest=bundle.digest, num_classes=10, input_shape=[1, 8, 8], sizes={})
    models, exact = [], {}
    for role, arch in (("teacher", "cnn_medium"), ("student", "mlp")):
        model = build_model(arch, (1, 8, 8), 10)
        checkpoint = save_model(model, arch, (1, 8, 8), 10, {}, tmp_path / f"{role}.pt")
        params = sum(p.numel() for p in model.parameters())
        state = model.state_dict()
        exact[role] = (sum(t.numel() * t.element_size() for t in state.values()), len(state))
        models.append(
            TrainedModel(
                role=role, arch=arch, checkpoint=str(checkpoint), run_id="-", parameters=params, val_acc=None, seconds=0
            )
        )
    off = PipelineConfig(evaluate={"timing": False})
    assert off.flat()["evaluate.timing"] is False
    with mlflow.start_run() as parent:
        ev = evaluate_models(off, data, models, parent.info.run_id)
    assert ev.timing == {} and ev.device_name == ""
    metrics = mlflow.MlflowClient().get_run(ev.run_id).data.metrics
    assert not any(k.startswith(("latency/", "throughput/")) for k in metrics) and "ratio/size" in metrics
    for role, (tensor_bytes, tensors) in exact.items():  # the tensors' bytes, plus under 1 KB per tensor saved
        assert tensor_bytes <= 1e6 * ev.size_mb[role] <= tensor_bytes + 1000 * tensors
    summary = {"evidence": {"size_ratio": 5.0, "latency_ratio": None, "throughput_ratio": None, "acc_points": 1.5}}
    assert evidence_sentence(summary) == (
        "the student is 5.0x smaller than its teacher, 1.50 points of accuracy apart (the teacher ahead) (timing off)"
    )
    with pytest.raises(ConfigError, match="evaluate.timing_seconds"):
        validate({"evaluate": {"timing_seconds": 0}})
    mlflow.set_tracking_uri(None)
