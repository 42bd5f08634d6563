"""Shared stores by URL: passwords never reach params, tags or summaries; dead trials end FAILED and are retried."""

import time

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from pipelines.config.schema import load_config
from pipelines.stores.shared import move_credentials_to_env
from pipelines.tracking.runs import loggable_params, redact
from pipelines.tuning.study import OPTUNA_STORAGE_ENV, open_study, storage_url


def test_redact_removes_userinfo_and_query_passwords():
    assert (
        redact("postgresql+psycopg2://kd:s3cret@db.example:5432/optuna")
        == "postgresql+psycopg2://***@db.example:5432/optuna"
    )
    assert redact("postgresql://kd:p@ss@127.0.0.1/db") == "postgresql://***@127.0.0.1/db"
    assert (
        redact("postgresql://127.0.0.1/db?user=kd&password=hunter2&sslmode=require")
        == "postgresql://127.0.0.1/db?user=kd&password=***&sslmode=require"
    )
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact("sqlite:////srv/mlruns/optuna.db") == "sqlite:////srv/mlruns/optuna.db"


def test_credentials_move_from_the_config_to_the_environment(monkeypatch):
    storage = "postgresql+psycopg2://kd:s3cret@10.0.0.5/optuna"
    tracking = "https://bob:t0ken@mlflow.example"
    cfg = load_config("digits", [f"tune.storage={storage}", f"runtime.tracking_uri={tracking}"])
    assert "s3cret" not in str(loggable_params(cfg)) and "t0ken" not in str(loggable_params(cfg))

    clean, env = move_credentials_to_env(cfg)
    assert env == {OPTUNA_STORAGE_ENV: storage, "MLFLOW_TRACKING_URI": tracking}
    dumped = clean.model_dump_json()  # what becomes Prefect flow parameters
    assert "s3cret" not in dumped and "t0ken" not in dumped and clean.tune.n_trials == cfg.tune.n_trials
    monkeypatch.setenv(OPTUNA_STORAGE_ENV, storage)
    assert storage_url(clean) == storage  # each machine reads it from its own environment

    plain = load_config("digits", ["tune.storage=sqlite:////tmp/x.db"])
    assert move_credentials_to_env(plain) == (plain, {})


def test_a_silent_trial_is_failed_its_run_ended_and_its_parameters_queued_again(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = load_config(
        "digits",
        [f"tune.storage=sqlite:///{tmp_path / 'optuna.db'}", "tune.heartbeat_seconds=1", "tune.grace_seconds=2"],
    )
    study = open_study(cfg, "faults", epochs=3)
    with mlflow.start_run(run_name="trial-0") as run:
        pass
    client = MlflowClient()
    client.update_run(run.info.run_id, status="RUNNING")  # a worker that died mid-trial never closed it

    trial = study.ask()
    trial.suggest_float("alpha", 0.1, 0.9)
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    study._storage.record_heartbeat(trial._trial_id)  # one beat, then silence
    time.sleep(3)
    optuna.storages.fail_stale_trials(study)

    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert study.trials[1].params == study.trials[0].params and study.trials[1].system_attrs["failed_trial"] == 0
    dead = client.get_run(run.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["trial_state"] == "FAIL"
