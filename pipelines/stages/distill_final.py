"""Stage 6: the student retrained with the best method and hyper-parameters found on the validation split
(on train + validation under tune.refit=train+val)."""

from __future__ import annotations

from kdcore.data import DataBundle
from pipelines.cache.keys import cache_dir
from pipelines.config.methods import build_method, needs_teacher_model
from pipelines.config.schema import PipelineConfig
from pipelines.results import PreparedData, TrainedModel, TuneResult
from pipelines.teachers.teacher_targets import teacher_targets
from pipelines.training.model_run import settings_for, train_model
from pipelines.training.refit import final_bundle, final_targets, refit_epochs
from pipelines.tuning.study import final_student, with_student


def distill_final(
    cfg: PipelineConfig,
    data: PreparedData,
    logits_path: str,
    tuned: TuneResult,
    parent_run_id: str,
    teacher: TrainedModel | None = None,
) -> TrainedModel:
    """`teacher` is needed when the teacher runs online: augmented data without cached views, or a feature method."""
    cfg = with_student(cfg, final_student(cfg, tuned))  # the searched architecture and size, when searched
    p = tuned.best_params
    settings = settings_for(
        cfg.student.train, cfg, epochs=refit_epochs(cfg, tuned), lr=p["lr"], weight_decay=p["weight_decay"]
    )
    checkpoint = cache_dir(cfg.runtime.store_dir, "runs") / f"student-{parent_run_id}.pt"
    bundle = DataBundle.load(data.path)
    if teacher is None and needs_teacher_model(tuned.method):
        raise ValueError(f"distill_final: method {tuned.method} reads teacher features; pass the trained teacher")
    if teacher is None and bundle.view.augments and not logits_path:
        raise ValueError(
            "distill_final: training batches are augmented, so the teacher runs online; pass the trained teacher"
        )
    targets = teacher_targets(
        bundle, teacher and teacher.checkpoint, logits_path, need_model=needs_teacher_model(tuned.method)
    )
    targets = final_targets(cfg, bundle, targets, teacher and teacher.checkpoint, logits_path)
    return train_model(
        "student",
        cfg.student,
        settings,
        cfg,
        final_bundle(cfg, bundle),
        build_method(cfg, tuned.method, p),
        parent_run_id,
        checkpoint,
        soft_targets=targets,
        extra_params={
            "data.digest": data.digest,
            "distill.soft_targets": targets.kind,
            "best.method": tuned.method,
            **{f"best.{k}": v for k, v in p.items()},
            **({} if tuned.chosen_trial is None else {"search.chosen_trial": tuned.chosen_trial}),
            **{f"cost.{k}": v for k, v in tuned.costs.items()},
        },
    )
