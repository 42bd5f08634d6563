"""Stage 3: the teacher's outputs on the train split, computed once and shared by every trial."""
from __future__ import annotations

import logging

import torch

from kdcore.evaluate import predict_logits
from pipelines.cache import cache_dir, cache_key
from pipelines.checkpoint import load_model, save_atomic
from pipelines.config import PipelineConfig
from pipelines.results import PreparedData, TrainedModel
from pipelines.stages.prepare_data import load_bundle
from pipelines.teacher_targets import cached_logits_valid

log = logging.getLogger("kdflow")


def compute_teacher_logits(cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel) -> str:
    path = cache_dir(cfg.runtime.store_dir, "logits") / f"{cache_key(data.digest, teacher.checkpoint, teacher.run_id)}.pt"
    if path.exists():
        log.info("teacher logits: reusing %s", path)
        return str(path)
    bundle = load_bundle(data.path)
    if not cached_logits_valid(bundle):
        log.info("teacher logits: not cached; training batches are augmented, so the teacher runs online on each batch")
        return ""
    model = load_model(teacher.checkpoint)  # eval mode; predict_logits runs without gradients
    logits = predict_logits(model, bundle.train.x, transform=bundle.view.normalise)
    save_atomic(logits, path)
    log.info("teacher logits: computed for %d training samples", len(logits))
    return str(path)


def load_logits(path: str) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)
