"""Stage 3: the teacher's outputs on the train split, computed once and shared by every trial and later run.

Plain (un-augmented) data: one row of logits per sample. Augmented data with distill.teacher_views = K > 0:
the teacher's logits on K seeded views per sample, with the crop/flip draws that made them, for the
student to replay. Augmented data with K = 0: nothing is cached, the teacher runs online ("").
Both files are named by what determines them: the data digest (it covers the view), the teacher's
weights (a hash of them, so a new teacher at the same path misses), K and seed, and the kdcore code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kdcore.data import DataBundle
from kdcore.device import resolve_device
from kdcore.evaluate import predict_logits
from kdcore.teacher_views import TeacherViews
from pipelines.cache.checkpoint import load_model, save_atomic, weights_digest
from pipelines.cache.keys import cache_dir, cache_key, verified_entry
from pipelines.config.schema import PipelineConfig
from pipelines.results import PreparedData, TrainedModel
from pipelines.teachers.hf_teacher import teacher_view
from pipelines.teachers.teacher_targets import cached_logits_valid

log = logging.getLogger("kdflow")


def teacher_logits_path(cfg: PipelineConfig, data: PreparedData, teacher_weights: str) -> Path:
    return cache_dir(cfg.runtime.store_dir, "logits") / f"{cache_key(data.digest, teacher_weights)}.pt"


def teacher_views_path(cfg: PipelineConfig, data: PreparedData, teacher_weights: str) -> Path:
    key = cache_key("views", data.digest, teacher_weights, cfg.distill.teacher_views, cfg.runtime.seed)
    return cache_dir(cfg.runtime.store_dir, "views") / f"{key}.pt"


def compute_teacher_logits(cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel) -> str:
    """The path of the cached soft targets every student trial reads; "" when the teacher must run online."""
    k = cfg.distill.teacher_views
    weights = weights_digest(teacher.checkpoint)
    logits_path = teacher_logits_path(cfg, data, weights)
    views_path = teacher_views_path(cfg, data, weights) if k else None
    for path in (logits_path, views_path):  # one digest is either plain or augmented: at most one of them exists
        if path is not None and verified_entry(path):
            log.info("teacher %s: reusing %s", "views" if path == views_path else "logits", path)
            return str(path)
    bundle = teacher_view(cfg, DataBundle.load(data.path))  # teacher.arch=hf: its own tokenizer's ids
    started = time.perf_counter()
    if cached_logits_valid(bundle):
        if k:
            log.info("teacher logits: distill.teacher_views=%d ignored, training batches are not augmented", k)
        model = load_model(teacher.checkpoint).to(resolve_device(cfg.runtime.device))  # eval mode, no gradients
        logits = predict_logits(model, bundle.train.x, transform=bundle.view.normalise)
        save_atomic(logits, logits_path)
        log.info(
            "teacher logits: computed for %d training samples in %.1fs", len(logits), time.perf_counter() - started
        )
        return str(logits_path)
    if not k:
        log.info(
            "teacher logits: not cached; training batches are augmented, so the teacher runs online on each batch "
            "(distill.teacher_views=K caches K consistent views instead)"
        )
        return ""
    model = load_model(teacher.checkpoint).to(resolve_device(cfg.runtime.device))  # K passes: worth a GPU
    views = TeacherViews.build(model, bundle.train.x, bundle.view, k, seed=cfg.runtime.seed)
    save_atomic(views.state_dict(), views_path)
    log.info(
        "teacher views: computed %d augmented views of %d training samples in %.1fs",
        k,
        len(views),
        time.perf_counter() - started,
    )
    return str(views_path)
