"""Stage 2: train the teacher, or reuse the one already trained on the same data and config."""

from __future__ import annotations

import json
import logging
import shutil
import time

import mlflow

from kdcore.data import DataBundle
from kdcore.distill import LabelsOnly
from kdcore.evaluate import evaluate
from kdcore.models import count_parameters
from pipelines.cache.checkpoint import load_model, read_spec
from pipelines.cache.keys import cache_dir, cache_key, verified_entry, write_entry_text
from pipelines.cache.store_lock import store_lock
from pipelines.config.schema import PipelineConfig
from pipelines.results import PreparedData, TrainedModel
from pipelines.teachers.hf_teacher import teacher_view
from pipelines.teachers.pretrained import pretrained_stamp
from pipelines.tracking.runs import loggable_params, redact, stage_run, tracking_uri
from pipelines.training.model_run import settings_for, train_model

log = logging.getLogger("kdflow")


def teacher_cache_key(cfg: PipelineConfig, data_digest: str) -> str:
    """What determines the teacher: the data, its own config, the seed, the run store and the code."""
    return cache_key(
        "teacher",
        data_digest,
        cfg.teacher.model_dump(),
        cfg.runtime.seed,
        redact(tracking_uri(cfg)),
        *filter(None, [pretrained_stamp(cfg.teacher)]),  # only when used: other teachers keep their cache keys
    )


def train_teacher(cfg: PipelineConfig, data: PreparedData, parent_run_id: str) -> TrainedModel:
    if cfg.teacher.checkpoint:
        return given_teacher(cfg, data, parent_run_id)
    key = teacher_cache_key(cfg, data.digest)
    # One process trains a given teacher; another run that needs it waits here, then reuses it.
    waiting = f"teacher: another kdflow process is training this teacher ({key}); waiting to reuse it"
    with store_lock(cfg.runtime.store_dir, f"teacher-{key}", waiting):
        return cached_or_trained_teacher(cfg, data, parent_run_id, key)


def cached_or_trained_teacher(cfg: PipelineConfig, data: PreparedData, parent_run_id: str, key: str) -> TrainedModel:
    folder = cache_dir(cfg.runtime.store_dir, "teacher")
    checkpoint, record = folder / f"{key}.pt", folder / f"{key}.json"
    if verified_entry(checkpoint) and verified_entry(record):  # a damaged entry is reported, deleted, retrained
        cached = TrainedModel.model_validate_json(record.read_text())
        log.info("teacher: reusing %s from MLflow run %s (same data and teacher config)", cached.arch, cached.run_id)
        return cached.model_copy(update={"reused": True, "seconds": 0.0})

    extra_params = {"data.digest": data.digest, "teacher.cache_key": key}
    if cfg.teacher.distributed.nproc > 1:
        from pipelines.training.ddp_teacher import launch

        result = launch(cfg, data.path, parent_run_id, checkpoint, extra_params)
    else:
        bundle = teacher_view(cfg, DataBundle.load(data.path))  # teacher.arch=hf: its own tokenizer's ids
        settings = settings_for(cfg.teacher.train, cfg)
        result = train_model(
            "teacher",
            cfg.teacher,
            settings,
            cfg,
            bundle,
            LabelsOnly(),
            parent_run_id,
            checkpoint,
            extra_params=extra_params,
        )
    write_entry_text(record, json.dumps(result.model_dump()))  # appears only once checkpoint and run are complete
    return result


def given_teacher(cfg: PipelineConfig, data: PreparedData, parent_run_id: str) -> TrainedModel:
    """teacher.checkpoint: no training; its fit to the data was checked in prepare_data, its val accuracy is logged."""
    started = time.perf_counter()
    bundle = DataBundle.load(data.path)
    spec = read_spec(cfg.teacher.checkpoint)
    model = load_model(cfg.teacher.checkpoint)
    checkpoint = cache_dir(cfg.runtime.store_dir, "runs") / f"teacher-{parent_run_id}.pt"
    shutil.copyfile(cfg.teacher.checkpoint, checkpoint)  # later stages read our copy, even if the original moves
    val_acc = evaluate(model, bundle.val, transform=bundle.view.normalise)["acc"]
    n_params = count_parameters(model)
    with stage_run("teacher", parent_run_id, **{"kdflow.teacher_source": "checkpoint"}) as run:
        mlflow.log_params(
            {
                **loggable_params(cfg),
                "data.digest": data.digest,
                "model.parameters": n_params,
                "teacher.checkpoint_arch": spec["arch"],
            }
        )
        mlflow.log_metrics({"val/acc": val_acc, "parameters": n_params})
        mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
    log.info("teacher: using %s from %s (val/acc %.4f)", spec["arch"], cfg.teacher.checkpoint, val_acc)
    return TrainedModel(
        role="teacher",
        arch=spec["arch"],
        checkpoint=str(checkpoint),
        run_id=run.info.run_id,
        parameters=n_params,
        val_acc=val_acc,
        seconds=time.perf_counter() - started,
        reused=True,
    )
