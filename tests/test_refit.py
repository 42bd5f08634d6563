"""tune.refit=train+val: the final baseline and student train on train + validation, with the teacher's soft
targets extended to the validation samples; tuning still selects on validation, and the test split is untouched."""

import mlflow
import pytest
import torch
import torch.nn as nn
from mlflow.tracking import MlflowClient

from kdcore.data import DataBundle, InputView, Split
from kdcore.distill import LabelsOnly
from kdcore.evaluate import predict_logits
from kdcore.teacher_views import TeacherViews
from kdcore.train import TrainSettings, fit
from pipelines import stages
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import load_config
from pipelines.results import TuneResult
from pipelines.teachers.teacher_targets import teacher_targets
from pipelines.tracking.runs import setup_experiment
from pipelines.training.refit import final_bundle, final_targets, refit_epochs, validation_outputs_path
from pipelines.tuning.study import defaults

SMALL = [
    "teacher.arch=cnn_small",
    "teacher.width=4",
    "teacher.train.epochs=1",
    "student.train.epochs=2",
    "runtime.device=cpu",
    "tune.refit=train+val",
]


def test_fit_without_a_validation_split_logs_no_val_metrics():
    x, y = torch.randn(40, 1, 4, 4), torch.arange(40) % 2
    history = fit(
        nn.Sequential(nn.Flatten(), nn.Linear(16, 2)),
        Split(x, y),
        None,
        TrainSettings(epochs=2, batch_size=16),
        LabelsOnly(),
    )
    assert len(history) == 2 and all(set(h) == {"train/ce", "train/loss"} for h in history)


def test_views_extend_keeps_both_sets_and_refuses_another_augmentation():
    view = InputView(crop_padding=1, flip=True)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    a = TeacherViews.build(teacher, torch.randn(5, 1, 4, 4), view, k=2, seed=0)
    b = TeacherViews.build(teacher, torch.randn(3, 1, 4, 4), view, k=2, seed=1)
    joined = a.extend(b)
    assert len(joined) == 8 and joined.k == 2
    assert torch.equal(joined.logits[:, 5:], b.logits) and torch.equal(joined.params.dx[:, :5], a.params.dx)
    with pytest.raises(ValueError, match="cannot join"):
        a.extend(TeacherViews.build(teacher, torch.randn(3, 1, 4, 4), InputView(flip=True), k=2))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    store = tmp_path_factory.mktemp("refit")
    cfg = load_config("digits", [*SMALL, f"runtime.store_dir={store}"])
    previous = mlflow.get_tracking_uri()
    with mlflow.start_run(experiment_id=setup_experiment(cfg), run_name="refit") as parent:
        data = stages.prepare_data(cfg)
        teacher = stages.train_teacher(cfg, data, parent.info.run_id)
        yield cfg, data, teacher, parent.info.run_id
    mlflow.set_tracking_uri(previous)


def kd_result(cfg) -> TuneResult:
    return TuneResult(
        study_name="none",
        storage="none",
        method="kd",
        best_params=defaults(cfg, "kd"),
        best_value=None,
        complete=0,
        pruned=0,
        seconds=0.0,
    )


def test_final_models_train_on_train_and_validation(pipeline):
    cfg, data, teacher, pid = pipeline
    bundle = DataBundle.load(data.path)
    logits = stages.compute_teacher_logits(cfg, data, teacher)
    baseline = stages.train_baseline(cfg, data, pid)
    student = stages.distill_final(cfg, data, logits, kd_result(cfg), pid, teacher)

    client = MlflowClient()
    for model in (baseline, student):
        run = client.get_run(model.run_id)
        assert run.data.params["fit.samples"] == str(len(bundle.train) + len(bundle.val))
        assert run.data.params["tune.refit"] == "train+val"
        assert not [k for k in run.data.metrics if k.startswith("val/")] and model.val_acc is None
        assert client.get_metric_history(model.run_id, "train/loss")
    # The soft targets of the validation rows are the teacher's outputs on them, after the train split's cached ones.
    targets = final_targets(cfg, bundle, teacher_targets(bundle, teacher.checkpoint, logits), teacher.checkpoint)
    on_val = predict_logits(load_model(teacher.checkpoint), bundle.val.x, transform=bundle.view.normalise)
    assert torch.equal(targets.logits[: len(bundle.train)], torch.load(logits, weights_only=True))
    assert torch.allclose(targets.logits[len(bundle.train) :], on_val, atol=1e-6)
    # The final run cached them beside the train split's logits: a later run reuses them, teacher or not.
    assert torch.equal(
        torch.load(validation_outputs_path(logits), weights_only=True), targets.logits[len(bundle.train) :]
    )
    again = final_targets(cfg, bundle, teacher_targets(bundle, None, logits), None, logits)
    assert torch.equal(again.logits, targets.logits)
    joined = final_bundle(cfg, bundle)
    assert joined.val is None and torch.equal(joined.train.y, torch.cat([bundle.train.y, bundle.val.y]))
    assert torch.equal(joined.test.x, bundle.test.x)  # the test split is never trained on


def test_refit_with_cached_views_extends_them_to_the_validation_samples(pipeline):
    cfg, _, teacher, pid = pipeline
    cfg = load_config(
        "digits",
        [*SMALL, f"runtime.store_dir={cfg.runtime.store_dir}", "data.augment=crop_flip", "distill.teacher_views=2"],
    )
    data = stages.prepare_data(cfg)
    views = stages.compute_teacher_logits(cfg, data, teacher)
    bundle = DataBundle.load(data.path)
    targets = final_targets(cfg, bundle, teacher_targets(bundle, teacher.checkpoint, views), teacher.checkpoint)
    assert len(targets.views) == len(bundle.train) + len(bundle.val) and targets.views.k == 2
    student = stages.distill_final(cfg, data, views, kd_result(cfg), pid, teacher)
    assert MlflowClient().get_run(student.run_id).data.params["distill.soft_targets"] == "cached views"
    cached = TeacherViews.load(validation_outputs_path(views))  # the final run's views of the validation samples
    assert len(cached) == len(bundle.val) and cached.k == 2
    again = final_targets(cfg, bundle, teacher_targets(bundle, teacher.checkpoint, views), teacher.checkpoint, views)
    assert torch.equal(again.views.logits[:, len(bundle.train) :], cached.logits)  # (K, samples, classes)


def test_refit_from_cached_logits_needs_the_teacher(pipeline):
    cfg, data, teacher, pid = pipeline
    logits = stages.compute_teacher_logits(cfg, data, teacher)
    validation_outputs_path(logits).unlink(missing_ok=True)  # not yet cached by an earlier final run
    with pytest.raises(ValueError, match="tune.refit=train\\+val needs the teacher's outputs on the validation split"):
        stages.distill_final(cfg, data, logits, kd_result(cfg), pid)


def test_without_refit_the_final_models_keep_their_validation_curve(pipeline):
    cfg, data, teacher, pid = pipeline
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"refit": "train"})})
    baseline = stages.train_baseline(cfg, data, pid)
    run = MlflowClient().get_run(baseline.run_id)
    assert run.data.params["fit.samples"] == str(len(DataBundle.load(data.path).train))
    assert baseline.val_acc is not None and "val/acc" in run.data.metrics
    accs = [client_val(baseline.run_id, epoch) for epoch in (1, 2)]
    assert baseline.best_epoch == 1 + accs.index(max(accs))  # the best validation epoch, ties to the earlier


def client_val(run_id: str, epoch: int) -> float:
    return {m.step: m.value for m in MlflowClient().get_metric_history(run_id, "val/acc")}[epoch]


def test_the_refit_student_trains_for_the_epoch_count_the_search_found_best(pipeline):
    cfg, data, teacher, pid = pipeline
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"n_trials": 1, "epochs": None})})
    logits = stages.compute_teacher_logits(cfg, data, teacher)
    tuned = stages.tune_student(cfg, data, teacher, logits, pid)
    trial = MlflowClient().search_runs(
        [MlflowClient().get_run(pid).info.experiment_id], f"tags.`optuna.study` = '{tuned.study_name}'"
    )[0]
    assert tuned.best_epoch == trial.data.metrics["best_epoch"] in (1, 2)
    assert tuned.best_value == client_val(trial.info.run_id, tuned.best_epoch)  # the best epoch's, not the last's

    searched = tuned.model_copy(update={"best_epoch": 1})  # a search that peaked before the student's 2 epochs
    student = stages.distill_final(cfg, data, logits, searched, pid, teacher)
    baseline = stages.train_baseline(cfg, data, pid)
    client = MlflowClient()
    assert [m.step for m in client.get_metric_history(student.run_id, "train/loss")] == [1]
    assert client.get_run(student.run_id).data.params["fit.epochs"] == "1" and student.best_epoch == 1
    assert [m.step for m in client.get_metric_history(baseline.run_id, "train/loss")] == [1, 2]  # configured count
    longer = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"epochs": 3})})
    assert refit_epochs(longer, searched) == 2  # another schedule's best epoch does not carry over
