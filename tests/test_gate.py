"""The one promotion gate (pipelines/registry/gate.py) on a real SQLite MLflow store: each rule both ways, data that
does not compare, losses that would add up, the labels-only baseline chosen over a worse KD student, and two
registrations to one model at once."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import mlflow
import pytest
import torch

from kdcore.data import Split
from kdcore.datasets import load_dataset
from kdcore.models import build_model
from pipelines.cache.checkpoint import save_atomic, save_model
from pipelines.config.schema import ConfigError, PipelineConfig, validate
from pipelines.registry.gate import (
    DECISION_TAG,
    EVAL_ACC_TAG,
    EVAL_DIGEST_TAG,
    PROMOTION_RUN_TAG,
    Candidate,
    Scored,
    decide,
    eval_digest,
    promotion_lock,
    sqlite_path,
)
from pipelines.registry.registration import register_version
from pipelines.results import Evaluation, PreparedData, TrainedModel, TuneResult
from pipelines.stages.register import register_student
from pipelines.tracking.summary import champion_sentence

NAME = "kdflow-gate-student"
A, B = "a" * 16, "b" * 16  # two evaluation-data digests


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, model_input: list[str]) -> list[str]:
        return model_input


@pytest.fixture
def store(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("gate")
    yield tmp_path
    mlflow.set_tracking_uri(None)


def logged_model() -> tuple[str, str]:
    """A small real MLflow model in its own run: (model_uri, run_id)."""
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    return info.model_uri, run.info.run_id


def register(acc: float, digest: str = A, tolerance: float = 0.0):
    uri, run_id = logged_model()
    return register_version(NAME, Candidate(uri, acc, digest), tolerance, run_id=run_id), run_id


def champion() -> str:
    return str(mlflow.MlflowClient().get_model_version_by_alias(NAME, "champion").version)


def test_first_version_becomes_champion_and_every_version_records_its_data_and_decision(store):
    first, run_id = register(0.90)
    assert first.promote and first.version == "1" and first.reason == "no champion before"
    assert champion() == "1"
    mv = mlflow.MlflowClient().get_model_version(NAME, "1")
    assert mv.tags[EVAL_DIGEST_TAG] == A and float(mv.tags[EVAL_ACC_TAG]) == 0.90
    assert mv.tags[DECISION_TAG] == "no champion before"
    tag = mlflow.MlflowClient().get_run(run_id).data.tags[PROMOTION_RUN_TAG]
    assert tag == f"{NAME} v1 is now champion: no champion before"
    # the lock is a file beside the database, one per registered model
    assert (store / f"mlflow.db.{NAME}.promotion.lock").exists()


def test_a_version_equal_or_better_on_the_same_data_promotes_a_worse_one_does_not(store):
    register(0.90)
    worse, run_id = register(0.89)
    assert not worse.promote and champion() == "1" and worse.comparable
    assert worse.reason.startswith("kept champion v1: test acc 0.8900 is below its 0.9000")
    assert "registered, not champion" in mlflow.MlflowClient().get_run(run_id).data.tags[PROMOTION_RUN_TAG]
    tie, _ = register(0.90)  # >= : at equal accuracy the newer version takes over
    assert tie.promote and champion() == "3" and tie.champion_before == "1"
    better, _ = register(0.95)
    assert better.promote and champion() == "4" and better.reason.startswith("promoted over v3")


def test_tolerance_lets_a_small_loss_through_but_losses_cannot_add_up(store):
    register(0.90, tolerance=0.02)
    small, _ = register(0.89, tolerance=0.02)
    assert small.promote and champion() == "2"
    # 0.875 is within the tolerance of the champion (0.89) but not of the best this data has seen (0.90)
    second, _ = register(0.875, tolerance=0.02)
    assert not second.promote and champion() == "2"
    assert "below the best any version reached on this data, v1's 0.9000" in second.reason
    # with no tolerance, even the champion's own score is the floor
    strict, _ = register(0.895)
    assert not strict.promote and "v1's 0.9000" in strict.reason


def test_a_champion_scored_on_other_data_is_not_comparable_and_stays(store):
    register(0.80, digest=A)
    other, _ = register(0.99, digest=B)
    assert not other.promote and not other.comparable and champion() == "1"
    assert other.reason.startswith("kept champion v1: not comparable") and A in other.reason and B in other.reason
    # a version registered before digests were recorded compares with nothing
    client = mlflow.MlflowClient()
    client.delete_model_version_tag(NAME, "1", EVAL_DIGEST_TAG)
    again, _ = register(0.99, digest=A)
    assert not again.promote and "none recorded" in again.reason and champion() == "1"


def test_the_rule_on_recorded_figures():
    cand = Candidate("models:/m-x", 0.85, A)
    old = Scored("1", A, 0.90)
    # no champion (alias removed by hand) but a better version on this data: not promoted
    assert not decide(cand, None, [old], 0.0).promote
    assert decide(cand, None, [old], 0.05).promote
    # a caller that scored the champion on this very data (the retraining) makes other data comparable
    rescored = Candidate("models:/m-x", 0.85, A, champion_rescored=("7", 0.84))
    assert decide(rescored, Scored("7", B, 0.99), [Scored("7", B, 0.99)], 0.0).promote
    assert not decide(rescored, Scored("8", B, 0.70), [], 0.0).comparable  # scored another version than the champion


def test_register_tolerance_is_a_bounded_config_field():
    assert PipelineConfig().register.tolerance == 0.0
    assert PipelineConfig(register={"tolerance": 0.01}).flat()["register.tolerance"] == 0.01
    for bad in (-0.1, 2.0):
        with pytest.raises(ConfigError, match="register.tolerance"):
            validate({"register": {"tolerance": bad}})


def digits(folder: Path) -> PreparedData:
    """Real prepared splits: the registration exports the chosen model to ONNX and checks it on the test split."""
    bundle = load_dataset("digits", None, 0.2, 0.2, 0)
    path = save_atomic(bundle.state_dict(), folder / "digits.pt")
    return PreparedData(path=str(path), digest=bundle.digest, num_classes=10, input_shape=[1, 8, 8], sizes={})


def trained(role: str, val_acc: float | None) -> TrainedModel:
    uri, run_id = logged_model()
    folder = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///")).parent
    checkpoint = save_model(build_model("mlp", (1, 8, 8), 10), "mlp", (1, 8, 8), 10, {}, folder / f"{role}.pt")
    return TrainedModel(
        role=role,
        arch="mlp",
        checkpoint=str(checkpoint),
        run_id=run_id,
        model_uri=uri,
        parameters=10,
        val_acc=val_acc,
        seconds=1.0,
    )


def test_the_labels_only_baseline_is_registered_when_it_beats_the_kd_student_on_validation(store):
    cfg = PipelineConfig(name="gate")
    data = digits(store)
    student, baseline = trained("student", None), trained("baseline", 0.8972)
    tuned = TuneResult(study_name="s", storage="x", best_params={}, best_value=0.8056, complete=1, pruned=0, seconds=1)
    # on the test split the student happens to do better: the test split never chooses
    ev = Evaluation(run_id="e", test_acc={"student": 0.95, "baseline": 0.90}, parameters={}, eval_digest=A)
    reg = register_student(cfg, data, student, baseline, tuned, ev, parent_run_id=student.run_id)
    assert reg.role == "baseline" and reg.test_acc == 0.90 and reg.champion
    assert "labels-only baseline: its validation acc 0.8972 beats the KD student's 0.8056" in reg.choice
    mv = mlflow.MlflowClient().get_model_version(NAME, reg.version)
    assert mv.tags["kdflow.role"] == "baseline" and mv.tags["mlflow_run_id"] == baseline.run_id
    assert mv.tags["kdflow.checkpoint"] == "checkpoint/baseline.pt"
    assert mv.source == baseline.model_uri or mv.model_id == baseline.model_uri.split("/")[-1]
    summary = {
        "registered": {"role": reg.role, "choice": reg.choice, "test_acc": reg.test_acc},
        "mlflow": {"registered_model": reg.name, "version": reg.version},
        "champion": {"moved": reg.champion, "reason": reg.reason, "before": reg.champion_before},
    }
    assert champion_sentence(summary).endswith("v1 is now champion (no champion before).")
    assert "the labels-only baseline" in champion_sentence(summary)

    # a better KD student (on validation) is the one registered; same test data, so it is compared with v1
    tuned = tuned.model_copy(update={"best_value": 0.95})
    reg = register_student(cfg, data, trained("student", None), trained("baseline", 0.8972), tuned, ev)
    assert reg.role == "student" and reg.test_acc == 0.95 and reg.champion and reg.champion_before == "1"
    summary = {
        "registered": {"role": reg.role, "choice": reg.choice, "test_acc": reg.test_acc},
        "mlflow": {"registered_model": reg.name, "version": reg.version},
        "champion": {"moved": reg.champion, "reason": reg.reason, "before": reg.champion_before},
    }
    assert "v2 is now champion, promoted over v1" in champion_sentence(summary)


def test_the_digest_of_the_evaluation_data_changes_with_any_sample():
    x, y = torch.arange(12.0).reshape(4, 3), torch.tensor([0, 1, 0, 1])
    same = eval_digest(Split(x.clone(), y.clone()))
    assert eval_digest(Split(x, y)) == same
    assert eval_digest(Split(x, torch.tensor([0, 1, 1, 1]))) != same
    assert eval_digest(Split(x[:3], y[:3])) != same
    assert eval_digest(Split(x, y), tokenizer={"tokens": ["a"]}) != same


def concurrent_registration(uri, model_uri, acc, lock_kind, entered, go, results):
    """One process registering to NAME. `entered`: set inside the lock, then the registration dawdles so the
    other process asks while the lock is held (without a lock, both would decide on an empty registry)."""
    import pipelines.registry.gate as gate
    import pipelines.registry.registration as registry

    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().search_registered_models()  # open the store now: its first use takes seconds
    registry.promotion_lock = lambda name: gate.promotion_lock(name, kind=lock_kind)
    if entered is not None:
        real = mlflow.register_model

        def dawdling(*args, **kwargs):
            entered.set()
            time.sleep(3)
            return real(*args, **kwargs)

        mlflow.register_model = dawdling
    if go is not None:
        go.wait(120)
    decision = registry.register_version(NAME, Candidate(model_uri, acc, A), 0.0)
    results.put((acc, decision.promote, decision.version, decision.reason, decision.champion_before))


@pytest.mark.parametrize("lock_kind", ["file", "tag"])
def test_two_concurrent_promotions_end_with_the_better_one_and_coherent_decisions(store, lock_kind):
    worse_uri, _ = logged_model()
    better_uri, _ = logged_model()
    ctx = multiprocessing.get_context("spawn")
    entered, results = ctx.Event(), ctx.Queue()
    uri = mlflow.get_tracking_uri()
    procs = [
        ctx.Process(target=concurrent_registration, args=(uri, worse_uri, 0.80, lock_kind, entered, None, results)),
        ctx.Process(target=concurrent_registration, args=(uri, better_uri, 0.90, lock_kind, None, entered, results)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    got = {acc: rest for acc, *rest in (results.get(timeout=5) for _ in procs)}
    worse, better = got[0.80], got[0.90]
    assert worse[:2] == [True, "1"] and worse[2] == "no champion before"  # it held the lock first
    assert better[:2] == [True, "2"] and better[3] == "1" and better[2].startswith("promoted over v1")
    assert champion() == "2"
    assert mlflow.MlflowClient().get_registered_model(NAME).tags.get("kdflow.promotion_lock") is None  # released


def test_the_lock_file_is_found_beside_relative_and_absolute_sqlite_stores():
    assert sqlite_path("sqlite:///mlruns/mlflow.db") == Path("mlruns/mlflow.db")
    assert sqlite_path("sqlite:////srv/kd/mlflow.db") == Path("/srv/kd/mlflow.db")
    assert sqlite_path("http://127.0.0.1:5000") is None and sqlite_path("sqlite:///:memory:") is None


def test_the_tag_lock_takes_over_an_expired_lease_and_releases_its_own(store):
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    client.set_registered_model_tag(NAME, "kdflow.promotion_lock", f"someone 1 {time.time() - 1:.3f}")  # expired
    with promotion_lock(NAME, kind="tag") as kind:
        assert kind == "tag"
        assert not client.get_registered_model(NAME).tags["kdflow.promotion_lock"].startswith("someone")
    assert "kdflow.promotion_lock" not in client.get_registered_model(NAME).tags
