"""`kdflow run --preset fashion_mnist` end to end on the real Debian files, with a tiny budget."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="needs the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_preset_runs_on_the_real_files(kdflow, tmp_path):
    proc, summary = kdflow(
        "run",
        "--preset",
        "fashion_mnist",
        "--set",
        "data.limit_train=1000",
        "--set",
        "teacher.width=8",
        "--set",
        "teacher.train.epochs=2",
        "--set",
        "student.train.epochs=2",
        "--set",
        "tune.n_trials=2",
        "--set",
        "tune.epochs=1",
        "--set",
        "evaluate.timing_seconds=0.2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train': 1000, 'val': 6000, 'test': 10000" in proc.stderr  # 10 % of 60,000 held out; the official test set
    models = summary["models"]
    assert models["student"]["parameters"] == 50_890  # the 64-unit MLP of the table
    for role in ("teacher", "baseline", "student"):
        assert models[role]["test_acc"] > 0.3, (role, models[role])  # 10 classes: chance is 0.1; tiny budget
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow"]["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["data.dataset"] == "fashion_mnist" and parent.data.params["data.limit_train"] == "1000"
