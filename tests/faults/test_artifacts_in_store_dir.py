"""Artifacts go under runtime.store_dir, not ./mlruns of the folder the run started in."""

from __future__ import annotations

import os

import mlflow

from pipelines.config.schema import load_config
from pipelines.tracking.runs import setup_experiment, tracking_uri
from tests.conftest import TINY


def test_a_run_with_another_store_dir_writes_nothing_in_its_own_folder(kdflow, tmp_path):
    store = tmp_path / "elsewhere"
    proc, summary = kdflow("run", *TINY, "--set", "tune.n_trials=1", "--set", f"runtime.store_dir={store}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "mlruns").exists()
    assert (store / "mlflow.db").exists()
    logged = [p for p in (store / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in logged), logged
    assert any(p.name == "MLmodel" for p in logged), logged  # the registered student's model


def test_two_store_dirs_in_one_process_keep_their_own_stores_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("one", "two"):
        cfg = load_config("digits", [f"runtime.store_dir={tmp_path / name}"])
        experiment = mlflow.get_experiment(setup_experiment(cfg))
        assert tracking_uri(cfg) == f"sqlite:///{tmp_path / name / 'mlflow.db'}"  # not the URI MLflow exported
        assert experiment.artifact_location == (tmp_path / name / "artifacts").as_uri()
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("two/mlflow.db")
