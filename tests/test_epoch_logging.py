"""Per-epoch metrics reach MLflow in the background, complete before a stage's run ends; failures surface at flush.
Tuning starts from each searched method's known-good weights. Real SQLite stores for MLflow and Optuna."""

import logging
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipelines.config.schema import load_config
from pipelines.stages import compute_teacher_logits, prepare_data, train_baseline, train_teacher, tune_student
from pipelines.tracking.runs import EpochLogger, TrackingError
from pipelines.tuning.study import defaults, warm_starts


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite MLflow store for the module (creating one takes seconds), the working directory beside it."""
    folder = tmp_path_factory.mktemp("epoch-logging")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield MlflowClient(uri)
    mlflow.set_tracking_uri(previous)


def steps(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_logger_returns_at_once_and_flush_stores_every_epoch(store):
    run = store.create_run(store.create_experiment("async"))
    sent = {epoch: {"train/loss": 1.0 / epoch, "val/acc": 0.1 * epoch} for epoch in range(1, 6)}
    with EpochLogger(run.info.run_id) as logger:
        for epoch, metrics in sent.items():
            logger(epoch, metrics)
    assert steps(store, run.info.run_id, "val/acc") == pytest.approx({e: m["val/acc"] for e, m in sent.items()})
    assert steps(store, run.info.run_id, "train/loss") == pytest.approx({e: m["train/loss"] for e, m in sent.items()})


def test_a_lost_epoch_is_raised_at_flush_not_swallowed(store):
    logger = EpochLogger("0" * 32)  # no such run: the background write fails
    logger(1, {"val/acc": 0.5})  # the training step is not the one to hear about it
    with pytest.raises(TrackingError, match="1 of 1 epochs' metrics were not logged to MLflow run 0+"):
        logger.flush()
    logger.flush()  # reported once; nothing left in flight


def test_a_failing_stage_keeps_its_own_error(store, caplog):
    logger = EpochLogger("0" * 32)
    with caplog.at_level(logging.WARNING, logger="kdflow"), pytest.raises(ZeroDivisionError):
        with logger:
            logger(1, {"val/acc": 0.5})
            _ = 1 / 0
    assert "were not logged" in caplog.text


def test_stages_end_their_runs_with_every_epoch_stored(store):
    """train_model (teacher, baseline) and the tune worker's trials flush before their runs end."""
    cfg = load_config(
        "digits",
        [
            "teacher.arch=cnn_small",
            "teacher.width=8",
            "teacher.train.epochs=1",
            "student.train.epochs=3",
            "runtime.device=cpu",
            "runtime.store_dir=store",
            "tune.methods=[kd, dkd]",
            "tune.n_trials=2",
            "tune.epochs=2",
            "tune.study_name=warm",
            "tune.pruner=none",
        ],
    )
    client = store
    with mlflow.start_run(run_name="parent") as parent:
        data = prepare_data(cfg)
        teacher = train_teacher(cfg, data, parent.info.run_id)
        baseline = train_baseline(cfg, data, parent.info.run_id)
        logits = compute_teacher_logits(cfg, data, teacher)
        tune_student(cfg, data, teacher, logits, parent.info.run_id)

    for run_id, epochs in ((teacher.run_id, 1), (baseline.run_id, 3)):
        assert client.get_run(run_id).info.status == "FINISHED"
        for key in ("train/loss", "train/ce", "val/loss", "val/acc"):
            assert sorted(steps(client, run_id, key)) == list(range(1, epochs + 1)), key
    accs = steps(client, baseline.run_id, "val/acc")
    assert accs[baseline.best_epoch] == pytest.approx(baseline.val_acc) == max(accs.values())  # the kept epoch's

    # warm start: one trial per searched method, each with that method's published weights
    study = optuna.load_study(
        study_name="warm", storage=f"sqlite:///{Path(cfg.runtime.store_dir).resolve() / 'optuna.db'}"
    )
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.params["method"] for t in trials] == ["kd", "dkd"]
    assert {k: v for k, v in trials[1].params.items() if k != "method"} == pytest.approx(defaults(cfg, "dkd"))
    assert {k: v for k, v in trials[0].params.items() if k != "method"} == pytest.approx(defaults(cfg, "kd"))
    assert defaults(cfg, "dkd")["dkd.beta"] == 8.0  # DKD's CIFAR-100 setting, not a guess
    for trial in trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        assert client.get_run(run_id).info.status == "FINISHED"
        assert sorted(steps(client, run_id, "val/acc")) == [1, 2]


def test_warm_starts_follow_the_searched_methods():
    one = load_config("digits", ["distill.method=dkd"])
    assert warm_starts(one) == [defaults(one, "dkd")]  # one method: no categorical to fix
    several = load_config("digits", ["distill.method=dist", "tune.methods=[kd, dist, crd]"])
    starts = warm_starts(several)
    assert [s["method"] for s in starts] == ["dist", "kd", "crd"]  # distill.method first
    assert all(s == {"method": s["method"], **defaults(several, s["method"])} for s in starts)
    outside = load_config("digits", ["distill.method=kd", "tune.methods=[pkt, sp]"])
    assert [s["method"] for s in warm_starts(outside)] == ["pkt", "sp"]
