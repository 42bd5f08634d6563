"""tune.n_workers=2 without a work pool: two local worker processes pull trials from one SQLite study."""

import os

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from pipelines.config.schema import load_config
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student

State = optuna.trial.TrialState


def test_local_worker_processes_fill_one_study_with_nested_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = load_config(
        "digits",
        [
            "teacher.arch=cnn_small",
            "teacher.train.epochs=1",
            "runtime.device=cpu",
            "runtime.store_dir=store",
            "tune.n_trials=4",
            "tune.epochs=2",
            "tune.n_workers=2",
            "tune.study_name=local-fanout",
        ],
    )
    with mlflow.start_run(run_name="parent") as parent:
        data = prepare_data(cfg)
        teacher = train_teacher(cfg, data, parent.info.run_id)
        logits = compute_teacher_logits(cfg, data, teacher)
        result = tune_student(cfg, data, teacher, logits, parent.info.run_id)

    study = optuna.load_study(study_name="local-fanout", storage=f"sqlite:///{tmp_path / 'store' / 'optuna.db'}")
    finished = [t for t in study.trials if t.state in (State.COMPLETE, State.PRUNED)]
    assert len(finished) >= 4 and result.complete + result.pruned == len(finished)
    assert not [t for t in study.trials if t.state in (State.RUNNING, State.WAITING, State.FAIL)]
    assert {t.user_attrs["worker"] for t in study.trials} <= {"local-0", "local-1"}
    assert str(os.getpid()) not in {t.user_attrs["pid"] for t in study.trials}  # trials ran in the worker processes
    client = MlflowClient()
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (run.data.tags["kdflow.pid"], run.data.tags["kdflow.worker"]) == (
            trial.user_attrs["pid"],
            trial.user_attrs["worker"],
        )
        assert run.data.tags["kdflow.device"] == "cpu" and run.data.tags["kdflow.host"]
