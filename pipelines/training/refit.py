"""tune.refit = "train+val": once the search has chosen on validation, the final models learn from it too.

The baseline and the tuned student then train on train + validation (10 % more data on Fashion-MNIST's
preset split, what the usual 60k-image figures train on); nothing is left to validate them on, so their runs
log no val/* metrics. The test split is untouched either way. The student's soft targets must cover the
validation samples as well: the teacher scores them the same way it scored the train split, once per cache key.
With no validation split to pick its best epoch, the refit student trains for the best trial's best epoch count.
The refit baseline trains for its configured epochs: it has no search of its own, and giving it the student's
count would tune the baseline with the student's validation curve.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from kdcore.data import DataBundle
from kdcore.data.bundle import Split
from kdcore.device import resolve_device
from kdcore.evaluate import predict_logits
from kdcore.soft_targets import SoftTargets
from kdcore.teacher_views import TeacherViews
from pipelines.cache.checkpoint import load_model, save_atomic
from pipelines.cache.keys import verified_entry
from pipelines.config.schema import PipelineConfig
from pipelines.results import TuneResult
from pipelines.teachers.hf_teacher import teacher_view

log = logging.getLogger("kdflow")


def refits(cfg: PipelineConfig) -> bool:
    return cfg.tune.refit == "train+val"


def final_bundle(cfg: PipelineConfig, bundle: DataBundle) -> DataBundle:
    """The data the final models train on: `bundle` itself, or its train and validation splits as one (no val)."""
    if not refits(cfg):
        return bundle
    train = Split(torch.cat([bundle.train.x, bundle.val.x]), torch.cat([bundle.train.y, bundle.val.y]))
    log.info("refit: final model trains on train + validation, %d samples", len(train))
    return replace(bundle, train=train, val=None)


def refit_epochs(cfg: PipelineConfig, tuned: TuneResult) -> int:
    """The final student's epochs: under refit, the epoch the best trial peaked at on validation.

    Only when the trials ran the student's own epoch count: a best epoch of a shorter (or longer) search belongs
    to another learning-rate schedule, so the configured count stands.
    """
    epochs = cfg.student.train.epochs
    searched = cfg.tune.epochs or epochs
    if not refits(cfg) or tuned.best_epoch is None:
        return epochs
    if searched != epochs:
        log.info("refit: trials ran %d epochs, not the student's %d; training for %d", searched, epochs, epochs)
        return epochs
    log.info(
        "refit: the best trial peaked at epoch %d of %d; the final student trains for %d",
        tuned.best_epoch,
        epochs,
        tuned.best_epoch,
    )
    return tuned.best_epoch


def validation_outputs_path(train_outputs: str) -> Path:
    """The teacher's outputs on the validation split, cached beside (and keyed like) its train-split outputs."""
    path = Path(train_outputs)
    return path.with_name(f"{path.stem}.val{path.suffix}")


def final_targets(
    cfg: PipelineConfig,
    bundle: DataBundle,
    targets: SoftTargets,
    teacher_checkpoint: str | None,
    targets_path: str = "",
) -> SoftTargets:
    """`targets` for `bundle`'s train split, extended to its validation samples when the final model refits.

    `targets_path`: the teacher-logits stage's cache of `targets`; the validation outputs are computed once
    and cached beside it, so later runs (and other methods) reuse them without the teacher.
    """
    if not refits(cfg) or (targets.logits is None and targets.views is None):
        return targets  # no refit, or the teacher runs online and scores every batch it is given
    plain = targets.logits is not None  # else cached views
    cached = validation_outputs_path(targets_path) if targets_path else None
    if cached is not None and verified_entry(cached):
        log.info("refit: reusing the teacher's validation outputs %s", cached)
        more = torch.load(cached, map_location="cpu", weights_only=True) if plain else TeacherViews.load(cached)
    else:
        more = teacher_outputs_on_validation(cfg, bundle, targets, teacher_checkpoint)
        if cached is not None:
            save_atomic(more if plain else more.state_dict(), cached)
    if plain:
        return replace(targets, logits=torch.cat([targets.logits, more]))
    return replace(targets, views=targets.views.extend(more))


def teacher_outputs_on_validation(
    cfg: PipelineConfig, bundle: DataBundle, targets: SoftTargets, teacher_checkpoint: str | None
) -> torch.Tensor | TeacherViews:
    """The teacher scores the validation samples the way it scored the train split."""
    if teacher_checkpoint is None:
        raise ValueError(
            "distill_final: tune.refit=train+val needs the teacher's outputs on the validation split; "
            "pass the trained teacher"
        )
    teacher = targets.teacher or load_model(teacher_checkpoint)
    teacher.to(resolve_device(cfg.runtime.device)).eval()
    if targets.logits is not None:
        val = teacher_view(cfg, bundle).val  # teacher.arch=hf: its own tokenizer's ids
        return predict_logits(teacher, val.x, transform=bundle.view.normalise)
    # Fresh draws for the new samples: a different seed from the train split's views, the same augmentation and K.
    return TeacherViews.build(teacher, bundle.val.x, bundle.view, targets.views.k, seed=cfg.runtime.seed + 1)
