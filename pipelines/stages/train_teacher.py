"""Stage 2: train the teacher, or reuse the one already trained on the same data and config."""
from __future__ import annotations

import json
import logging
import os

from kdcore.distill import LabelsOnly
from pipelines.cache import cache_dir, cache_key
from pipelines.config import PipelineConfig
from pipelines.results import PreparedData, TrainedModel
from pipelines.stages.prepare_data import load_bundle
from pipelines.tracking import redact, tracking_uri
from pipelines.training import settings_for, train_model

log = logging.getLogger("kdflow")


def train_teacher(cfg: PipelineConfig, data: PreparedData, parent_run_id: str) -> TrainedModel:
    key = cache_key("teacher", data.digest, cfg.teacher.model_dump(), cfg.runtime.seed, redact(tracking_uri(cfg)))
    folder = cache_dir(cfg.runtime.store_dir, "teacher")
    checkpoint, record = folder / f"{key}.pt", folder / f"{key}.json"
    if checkpoint.exists() and record.exists():
        cached = TrainedModel.model_validate_json(record.read_text())
        log.info("teacher: reusing %s from MLflow run %s (same data and teacher config)", cached.arch, cached.run_id)
        return cached.model_copy(update={"reused": True, "seconds": 0.0})

    extra_params = {"data.digest": data.digest, "teacher.cache_key": key}
    if cfg.teacher.distributed.nproc > 1:
        from pipelines.ddp_teacher import launch

        result = launch(cfg, data.path, parent_run_id, checkpoint, extra_params)
    else:
        bundle = load_bundle(data.path)
        settings = settings_for(cfg.teacher.train, cfg)
        result = train_model("teacher", cfg.teacher, settings, cfg, bundle, LabelsOnly(), None, parent_run_id, checkpoint,
                             extra_params=extra_params)
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.model_dump()))
    os.replace(tmp, record)  # the record appears only once checkpoint and run are complete
    return result
