"""Every KD method trains end to end through the pipeline's stages, logging each loss term to MLflow;
the real `kdflow run` lets Optuna choose the method together with its own weights."""

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from kdcore.models import build_model, count_parameters
from pipelines import stages
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import ConfigError, DistillConfig, load_config
from pipelines.results import TuneResult
from pipelines.tracking.runs import setup_experiment
from pipelines.tuning.study import defaults
from tests.conftest import TINY

TERMS = {
    "kd": {"ce", "kd"},
    "dkd": {"ce", "tckd", "nckd"},
    "dist": {"ce", "inter", "intra"},
    "fitnets": {"ce", "hint"},
    "at": {"ce", "at"},
    "sp": {"ce", "sp"},
    "rkd": {"ce", "rkd_distance", "rkd_angle"},
    "pkt": {"ce", "pkt"},
    "crd": {"ce", "crd"},
}
SMALL = [
    "teacher.width=8",
    "teacher.train.epochs=1",
    "student.arch=cnn_small",
    "student.width=8",
    "student.train.epochs=1",
    "distill.crd.nce_k=64",
]


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    """Data, teacher and teacher logits from the real stages, once for all methods, in a SQLite MLflow store."""
    store = tmp_path_factory.mktemp("kd-methods")
    cfg = load_config("digits", [*SMALL, f"runtime.store_dir={store}", "runtime.device=cpu"])
    previous = mlflow.get_tracking_uri()
    experiment_id = setup_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name="kd-methods") as parent:
        pid = parent.info.run_id
        data = stages.prepare_data(cfg)
        teacher = stages.train_teacher(cfg, data, pid)
        logits = stages.compute_teacher_logits(cfg, data, teacher)
        yield cfg, data, teacher, logits, pid
    mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("method", sorted(TERMS))
def test_each_method_trains_through_distill_final_and_logs_its_terms(trained_teacher, method):
    cfg, data, teacher, logits, pid = trained_teacher
    tuned = TuneResult(
        study_name="none",
        storage="none",
        method=method,
        best_params=defaults(cfg, method),
        best_value=None,
        complete=0,
        pruned=0,
        seconds=0.0,
    )
    student = stages.distill_final(cfg, data, logits, tuned, pid, teacher)

    client = MlflowClient()
    run = client.get_run(student.run_id)
    assert run.data.params["best.method"] == method
    for term in TERMS[method] | {"loss"}:
        history = client.get_metric_history(student.run_id, f"train/{term}")
        assert [m.step for m in history] == [1], term
        assert all(m.value == m.value for m in history)  # finite, not NaN
    assert {k.removeprefix("train/") for k in run.data.metrics if k.startswith("train/")} == TERMS[method] | {"loss"}
    # The deployed student is the plain architecture: no connector, embedding head or memory bank.
    plain = build_model("cnn_small", tuple(data.input_shape), data.num_classes, width=8)
    assert student.parameters == count_parameters(plain)
    assert set(load_model(student.checkpoint).state_dict()) == set(plain.state_dict())


def test_feature_method_in_distill_final_needs_the_teacher(trained_teacher):
    cfg, data, _, logits, pid = trained_teacher
    tuned = TuneResult(
        study_name="none",
        storage="none",
        method="sp",
        best_params=defaults(cfg, "sp"),
        best_value=None,
        complete=0,
        pruned=0,
        seconds=0.0,
    )
    with pytest.raises(ValueError, match="method sp reads teacher features; pass the trained teacher"):
        stages.distill_final(cfg, data, logits, tuned, pid)


def test_method_config_is_typed_with_published_defaults():
    cfg = load_config("digits", ["distill.method=dkd", "distill.dkd.beta=2", "tune.methods=[kd, crd]"])
    d = cfg.distill
    assert (d.dkd.alpha, d.dkd.beta, d.dkd.temperature) == (1.0, 2.0, 4.0)
    assert (d.dist.beta, d.dist.gamma, d.fitnets.weight, d.at.weight, d.sp.weight, d.pkt.weight) == (
        2.0,
        2.0,
        100.0,
        1000.0,
        3000.0,
        30000.0,
    )
    assert (d.rkd.distance_weight, d.rkd.angle_weight, d.crd.weight, d.crd.temperature) == (25.0, 50.0, 0.8, 0.07)
    assert DistillConfig().crd.nce_k == 16384 and d.crd.nce_k == 1024  # the digits preset has fewer samples than 16,384
    assert cfg.flat()["distill.dkd.beta"] == 2.0 and cfg.tune.methods == ["kd", "crd"]
    with pytest.raises(ConfigError, match="^invalid config: distill.method: Input should be 'kd', 'dist', 'dkd', "):
        load_config("digits", ["distill.method=fitnet"])
    with pytest.raises(ConfigError, match="^invalid config: tune.methods.1: Input should be 'kd'"):
        load_config("digits", ["tune.methods=[kd, hint]"])


def test_kdflow_run_lets_optuna_choose_the_method_and_its_weights(kdflow, tmp_path):
    methods = ["dkd", "at", "crd"]
    sets = [a for s in SMALL for a in ("--set", s)]
    proc, summary = kdflow(
        "run",
        *TINY,
        *sets,
        "--set",
        "tune.n_trials=4",
        "--set",
        "tune.epochs=1",
        "--set",
        "tune.pruner=none",
        "--set",
        f"tune.methods=[{', '.join(methods)}]",
        "--set",
        "distill.method=dkd",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["best_method"] in methods
    assert f"best method: {summary['best_method']}" in proc.stdout

    study = optuna.load_study(
        study_name=summary["optuna"]["study_name"], storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    )
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4
    assert (
        trials[0].params["method"] == "dkd" and trials[0].params["dkd.beta"] == 8.0
    )  # warm start: the config's values
    for t in trials:  # conditional space: each trial holds only the weights of the method it drew
        own = {k.split(".")[0] for k in t.params if "." in k}
        assert own == {t.params["method"]}, t.params
    best = max(trials, key=lambda t: t.value)
    assert summary["best_method"] == best.params["method"]
    assert summary["best_params"] == {k: v for k, v in best.params.items() if k != "method"}

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(summary["models"]["student"]["mlflow_run_id"])
    assert run.data.params["best.method"] == summary["best_method"]
    logged = {k.removeprefix("train/") for k in run.data.metrics if k.startswith("train/")}
    assert logged == TERMS[summary["best_method"]] | {"loss"}
    trial_run = client.get_run(trials[0].user_attrs["mlflow_run_id"])
    assert trial_run.data.params["method"] == "dkd" and {"tckd", "nckd"} <= {
        k.removeprefix("train/") for k in trial_run.data.metrics
    }
    assert summary["models"]["student"]["parameters"] == summary["models"]["baseline"]["parameters"]
