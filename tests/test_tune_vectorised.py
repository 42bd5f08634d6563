"""tune.vectorise: trials asked K at a time and trained as one stacked group, each still its own Optuna trial and
nested MLflow run (real SQLite MLflow store, real Optuna storage, digits)."""

import logging
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient

from kdcore.datasets import load_dataset
from kdcore.soft_targets import SoftTargets
from pipelines.config.schema import load_config
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student
from pipelines.training.model_run import settings_for
from pipelines.tuning.group_heartbeat import GroupHeartbeat
from pipelines.tuning.study import open_study
from pipelines.tuning.trial_group import GroupRunner, group_size
from pipelines.tuning.worker import TuneJob, load_inputs, where

State = optuna.trial.TrialState
TINY = ["teacher.arch=cnn_small", "teacher.train.epochs=1", "runtime.device=cpu", "runtime.store_dir=store"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return tmp_path


def prepared(cfg):
    """Data, teacher and cached soft targets under a parent run: what the tuning stage starts from."""
    with mlflow.start_run(run_name="parent") as parent:
        data = prepare_data(cfg)
        teacher = train_teacher(cfg, data, parent.info.run_id)
        logits = compute_teacher_logits(cfg, data, teacher)
    return parent.info.run_id, data, teacher, logits


def test_a_group_of_trials_are_optuna_trials_and_nested_runs_each_with_their_own_params_and_epochs(store):
    cfg = load_config(
        "digits",
        [*TINY, "tune.n_trials=4", "tune.epochs=2", "tune.vectorise=4", "tune.pruner=none", "tune.study_name=grp"],
    )
    parent, data, teacher, logits = prepared(cfg)
    result = tune_student(cfg, data, teacher, logits, parent)

    study = optuna.load_study(study_name="grp", storage=f"sqlite:///{store / 'store' / 'optuna.db'}")
    assert [t.state for t in study.trials] == [State.COMPLETE] * 4 and result.complete == 4
    client = MlflowClient()
    lrs = set()
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.info.run_name == f"trial-{trial.number}"
        assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["kdflow.group_size"] == "4"
        assert run.data.tags["trial_state"] == "COMPLETE"
        assert float(run.data.params["lr"]) == trial.params["lr"] and run.data.params["method"] == "kd"
        assert float(run.data.params["temperature"]) == trial.params["temperature"]
        curve = client.get_metric_history(run.info.run_id, "val/acc")
        assert sorted(m.step for m in curve) == [1, 2]
        assert trial.value == max(m.value for m in curve)  # the kept (best) epoch's val/acc
        assert trial.intermediate_values == {m.step: m.value for m in curve}  # reported to Optuna per epoch
        lrs.add(trial.params["lr"])
    assert len(lrs) == 4  # four different trials, not one trained four times


def runner_and_study(cfg, parent, data, teacher, logits):
    job = TuneJob(
        study_name=cfg.tune.study_name,
        data_path=str(Path(data.path).resolve()),
        logits_path=str(Path(logits).resolve()),
        teacher_checkpoint=str(Path(teacher.checkpoint).resolve()),
        parent_run_id=parent,
        epochs=cfg.tune.epochs,
    )
    bundle, targets = load_inputs(cfg, job)
    study = open_study(cfg, job.study_name, job.epochs)
    return GroupRunner(cfg, job, "test", bundle, targets, where("cpu")), study


def test_a_pruned_member_and_a_non_finite_member_end_alone(store):
    cfg = load_config(
        "digits",
        [
            *TINY,
            "tune.n_trials=6",
            "tune.epochs=4",
            "tune.vectorise=3",
            "tune.pruner=median",
            "tune.study_name=prune",
            "student.train.optimizer=sgd",
        ],
    )
    runner, study = runner_and_study(cfg, *prepared(cfg))
    good = {"temperature": 4.0, "alpha": 0.9, "weight_decay": 1e-4}
    for lr in (0.05, 0.08, 0.1):
        study.enqueue_trial({**good, "lr": lr})
    first = runner.run(study, 3)  # the pruner's reference: three finished trials
    assert [t.state for t in first] == [State.COMPLETE] * 3
    # the best trial again (the same curve: never below the median), one far behind the median, and one that
    # overflows (queued outside the range: Optuna warns and runs it)
    best = max(first, key=lambda t: t.value)
    for lr in (best.params["lr"], 1e-4, 1e30):
        study.enqueue_trial({**good, "lr": lr})
    sound, slow, overflow = runner.run(study, 3)

    assert sound.state == State.COMPLETE and sound.value == pytest.approx(best.value)
    assert slow.state == State.PRUNED and max(slow.intermediate_values) < cfg.tune.epochs
    assert overflow.state == State.FAIL
    client = MlflowClient()
    pruned_run = client.get_run(slow.user_attrs["mlflow_run_id"])
    assert pruned_run.data.tags["trial_state"] == "PRUNED" and pruned_run.info.status == "FINISHED"
    assert pruned_run.data.metrics["pruned_at_epoch"] == max(slow.intermediate_values)
    failed_run = client.get_run(overflow.user_attrs["mlflow_run_id"])
    assert failed_run.info.status == "FAILED" and failed_run.data.tags["trial_state"] == "FAIL"
    assert "non-finite" in failed_run.data.tags["kdflow.failure"]
    sound_run = client.get_run(sound.user_attrs["mlflow_run_id"])
    assert len(client.get_metric_history(sound_run.info.run_id, "val/acc")) == cfg.tune.epochs


def test_a_feature_method_falls_back_to_one_trial_at_a_time_and_says_why(store, caplog):
    cfg = load_config("digits", [*TINY, "distill.method=fitnets", "tune.vectorise=8"])
    bundle, targets = load_inputs_without_stages(cfg)
    with caplog.at_level(logging.INFO, logger="kdflow"):
        assert group_size(cfg, bundle, targets, settings_for(cfg.student.train, cfg)) == 1
    assert "falls back to one trial at a time: fitnets is a feature method" in caplog.text


def load_inputs_without_stages(cfg):
    bundle = load_dataset("digits")
    return bundle, SoftTargets(logits=torch.randn(len(bundle.train), bundle.num_classes))


def test_a_silent_group_is_failed_and_retried_trial_by_trial(store):
    """The group's heartbeats keep every trial alive; once they stop (a dead worker), each trial turns stale, is
    failed, and queued again with its own parameters, like single trials."""
    cfg = load_config("digits", [*TINY, "tune.heartbeat_seconds=1", "tune.grace_seconds=4", "tune.study_name=beat"])
    study = open_study(cfg, "beat", 2)
    trials = [study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)}) for _ in range(2)]
    with GroupHeartbeat(study._storage, [t._trial_id for t in trials]):
        time.sleep(5)  # longer than the grace period: only the heartbeats keep them alive
        optuna.storages.fail_stale_trials(study)
        assert [t.state for t in study.trials] == [State.RUNNING] * 2
    time.sleep(5)  # the worker "died": silence past the grace period
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.trials]
    assert states[:2] == [State.FAIL] * 2 and states[2:] == [State.WAITING] * 2
    assert sorted(t.params["lr"] for t in study.trials[2:]) == sorted(t.params["lr"] for t in trials)


def test_auto_measures_each_group_size_and_logs_its_choice(store, caplog):
    cfg = load_config("digits", [*TINY, "tune.vectorise=auto", "tune.n_trials=4", "tune.epochs=2"])
    bundle, targets = load_inputs_without_stages(cfg)
    with caplog.at_level(logging.INFO, logger="kdflow"):
        chosen = group_size(cfg, bundle, targets, settings_for(cfg.student.train, cfg, epochs=2))
    assert chosen in (1, 2, 4)  # never more trials at once than the study holds
    assert f"tune.vectorise=auto chose {chosen} trials at once (trials/s by group size: 1: " in caplog.text
    assert "mlp stacks as grouped layers" in caplog.text


def test_two_worker_processes_each_pull_groups_from_one_study(store):
    cfg = load_config(
        "digits",
        [*TINY, "tune.n_trials=4", "tune.epochs=2", "tune.vectorise=2", "tune.n_workers=2", "tune.study_name=fan"],
    )
    parent, data, teacher, logits = prepared(cfg)
    tune_student(cfg, data, teacher, logits, parent)

    study = optuna.load_study(study_name="fan", storage=f"sqlite:///{store / 'store' / 'optuna.db'}")
    finished = [t for t in study.trials if t.state in (State.COMPLETE, State.PRUNED)]
    assert len(finished) >= 4 and not [t for t in study.trials if t.state in (State.RUNNING, State.WAITING)]
    assert {t.user_attrs["worker"] for t in study.trials} <= {"local-0", "local-1"}
    client = MlflowClient()
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["kdflow.group_size"] in ("1", "2")
        assert run.data.tags["kdflow.pid"] == trial.user_attrs["pid"]
