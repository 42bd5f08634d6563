"""Stage 4: the student trained on labels alone: the number distillation has to beat (on the same data as the
final student: train, or train + validation under tune.refit=train+val)."""

from __future__ import annotations

from kdcore.data import DataBundle
from kdcore.distill import LabelsOnly
from pipelines.cache.keys import cache_dir
from pipelines.config.schema import ModelConfig, PipelineConfig
from pipelines.results import PreparedData, TrainedModel
from pipelines.training.model_run import settings_for, train_model
from pipelines.training.refit import final_bundle
from pipelines.tuning.study import with_student


def train_baseline(
    cfg: PipelineConfig, data: PreparedData, parent_run_id: str, student: ModelConfig | None = None
) -> TrainedModel:
    """`student`: the architecture and size to train (default cfg.student); a size search passes the chosen one,
    so that KD is compared with labels alone at the same cost."""
    cfg = with_student(cfg, student or cfg.student)
    checkpoint = cache_dir(cfg.runtime.store_dir, "runs") / f"baseline-{parent_run_id}.pt"
    settings = settings_for(cfg.student.train, cfg)
    return train_model(
        "baseline",
        cfg.student,
        settings,
        cfg,
        final_bundle(cfg, DataBundle.load(data.path)),
        LabelsOnly(),
        parent_run_id,
        checkpoint,
        extra_params={"data.digest": data.digest},
    )
