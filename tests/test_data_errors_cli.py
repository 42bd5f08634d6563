"""Data that cannot be used ends the real CLI with one sentence, exit 1, and no finished MLflow run."""

import sqlite3

import torch

from kdcore.models import build_model
from pipelines.cache.checkpoint import save_model


def finished_runs(tmp_path) -> list:
    db = tmp_path / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("select run_uuid from runs where status = 'FINISHED'").fetchall()


def error_line(stderr: str) -> str:
    """The CLI's own message (Prefect may log its server shutdown after it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("kdflow:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_missing_dataset_files_exit_1_and_leave_no_finished_run(kdflow, tmp_path):
    missing = tmp_path / "nowhere"
    proc, summary = kdflow(
        "run", "--preset", "fashion_mnist", "--set", f"data.root={missing}", "--set", "data.download=false"
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert error_line(proc.stderr).startswith(
        f"kdflow: data error: fashion_mnist files not found under data.root={missing}"
    )
    assert summary is None and finished_runs(tmp_path) == []
    assert "Traceback" not in proc.stderr


def test_teacher_checkpoint_with_the_wrong_class_count_exit_1(kdflow, tmp_path):
    path = tmp_path / "teacher3.pt"
    torch.manual_seed(0)
    save_model(build_model("mlp", (1, 8, 8), 3), "mlp", (1, 8, 8), 3, {}, path)
    proc, summary = kdflow("run", "--set", f"teacher.checkpoint={path}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert error_line(proc.stderr) == (
        f"kdflow: data error: teacher.checkpoint={path} predicts 3 classes but data.dataset=digits has 10; "
        "use a teacher trained on this dataset or drop teacher.checkpoint"
    )
    assert summary is None and finished_runs(tmp_path) == []
    assert "Traceback" not in proc.stderr
