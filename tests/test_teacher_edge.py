"""A teacher no better than the labels-only student has nothing to distil: every summary says so."""

import pytest
from mlflow.tracking import MlflowClient

from flows.artifacts import summary_markdown
from tests.test_flow_artifacts import SUMMARY

WEAK_TEACHER = [  # one epoch at a learning rate too small to move it: about chance on digits
    "--set",
    "teacher.train.epochs=1",
    "--set",
    "teacher.train.lr=1e-6",
    "--set",
    "student.train.epochs=3",
    "--set",
    "tune.n_trials=1",
    "--set",
    "tune.epochs=1",
    "--set",
    "evaluate.timing_seconds=0.2",
]


def best_val(client, run_id):
    return max(m.value for m in client.get_metric_history(run_id, "val/acc"))


def test_a_weak_teacher_is_reported_as_nothing_to_distil(kdflow, tmp_path):
    proc, summary = kdflow("run", *WEAK_TEACHER)
    assert proc.returncode == 0, proc.stderr[-3000:]

    edge, models = summary["teacher_edge"], summary["models"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    teacher_val = best_val(client, models["teacher"]["mlflow_run_id"])
    baseline_val = best_val(client, models["baseline"]["mlflow_run_id"])
    assert edge["split"] == "validation" and teacher_val < baseline_val
    assert edge["teacher_acc"] == pytest.approx(teacher_val) and edge["baseline_acc"] == pytest.approx(baseline_val)
    assert edge["points"] == pytest.approx(100 * (teacher_val - baseline_val))
    assert edge["nothing_to_distil"] is True

    assert "Nothing to distil: the teacher's validation accuracy" in proc.stdout  # the terminal
    parent = client.get_run(summary["mlflow"]["parent_run_id"])  # MLflow
    assert parent.data.tags["kdflow.nothing_to_distil"] == "true"
    assert parent.data.metrics["teacher_edge/val"] == pytest.approx(edge["points"])
    assert "**Nothing to distil: the teacher's validation accuracy" in summary_markdown(summary, None)  # Prefect


def test_a_better_teacher_has_no_such_note():
    edge = {"split": "validation", "points": 2.5, "teacher_acc": 0.99, "baseline_acc": 0.965}
    md = summary_markdown(SUMMARY | {"teacher_edge": edge | {"nothing_to_distil": False}}, None)
    assert "Nothing to distil" not in md
    weak = edge | {"points": -2.5, "teacher_acc": 0.94, "nothing_to_distil": True}
    md = summary_markdown(SUMMARY | {"teacher_edge": weak}, None)
    assert "Nothing to distil: the teacher's validation accuracy (94.00%) is not above the labels-only" in md
