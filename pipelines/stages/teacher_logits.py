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

log = logging.getLogger("kdflow")


def compute_teacher_logits(cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel) -> str:
    path = cache_dir(cfg.runtime.store_dir, "logits") / f"{cache_key(data.digest, teacher.checkpoint, teacher.run_id)}.pt"
    if path.exists():
        log.info("teacher logits: reusing %s", path)
        return str(path)
    model = load_model(teacher.checkpoint)  # eval mode; predict_logits runs without gradients
    logits = predict_logits(model, load_bundle(data.path).train.x)
    save_atomic(logits, path)
    log.info("teacher logits: computed for %d training samples", len(logits))
    return str(path)


def load_logits(path: str) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)
