"""Stage 6: the student retrained with the best method and hyper-parameters found on the validation split."""
from __future__ import annotations

from pipelines.cache import cache_dir
from pipelines.checkpoint import load_model
from pipelines.config import PipelineConfig
from pipelines.methods import build_method, needs_teacher_model
from pipelines.results import PreparedData, TrainedModel, TuneResult
from pipelines.stages.prepare_data import load_bundle
from pipelines.stages.teacher_logits import load_logits
from pipelines.training import settings_for, train_model


def distill_final(
    cfg: PipelineConfig, data: PreparedData, logits_path: str, tuned: TuneResult, parent_run_id: str,
    teacher: TrainedModel | None = None,
) -> TrainedModel:
    p = tuned.best_params
    settings = settings_for(cfg.student.train, cfg, lr=p["lr"], weight_decay=p["weight_decay"])
    checkpoint = cache_dir(cfg.runtime.store_dir, "runs") / f"student-{parent_run_id}.pt"
    teacher_model = None
    if needs_teacher_model(tuned.method):
        if teacher is None:
            raise ValueError(f"distill_final: method {tuned.method} reads teacher features; pass the trained teacher")
        teacher_model = load_model(teacher.checkpoint)
    return train_model(
        "student", cfg.student, settings, cfg, load_bundle(data.path), build_method(cfg, tuned.method, p),
        load_logits(logits_path), parent_run_id, checkpoint,
        extra_params={"data.digest": data.digest, "best.method": tuned.method, **{f"best.{k}": v for k, v in p.items()}},
        teacher=teacher_model,
    )
