"""retrain.policy=refit: the distill pipeline reruns on the original data plus every batch (the joint upper bound).

The teacher is trained again and its soft targets computed, the labels-only baseline trained and the student
distilled with the champion's best hyper-parameters (or a new search of retrain.n_trials trials), all on one
bundle: the original train split plus every batch's train part, in the champion's stored form and input view (its
train-split mean and std are kept, never recomputed). Validation is the original one plus a share of each batch's
train part; the test parts are never trained, tuned or validated on. The stages log nested runs under the
retraining's run; the better of student and baseline on validation is the candidate; registration and the decision
are the continual policy's.
"""

from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import torch

from kdcore.data import DataBundle, DataError
from kdcore.data.bundle import Split
from kdcore.data.split import stratified_holdout
from pipelines.cache.checkpoint import save_atomic
from pipelines.cache.keys import cache_dir
from pipelines.config.schema import RetrainSection
from pipelines.lifelong.lineage import Lineage
from pipelines.lifelong.token_width import to_width
from pipelines.registry.gate import choose_on_validation
from pipelines.results import PreparedData, TrainedModel, TuneResult


def joint_bundle(bundle: DataBundle, trains: list[Split], classes: list[str], val_fraction: float, seed: int):
    """The original splits grown by every batch's train part (stored form, global class ids): a stratified
    `val_fraction` of each goes to validation, so the kept epoch and a search also weigh the batches' classes."""
    if bundle.tokenizer is not None:  # token ids: one width for the original splits and the batches
        width = int(bundle.tokenizer["max_len"])
        trains = [to_width(s, width) for s in trains]
        bundle = replace(bundle, **{n: to_width(s, width) for n, s in bundle.splits().items()})
    fits, helds = [bundle.train], [bundle.val]
    for split in trains:
        try:
            kept, held = stratified_holdout(split.y.numpy(), val_fraction, seed)
        except DataError:  # too few samples per class to hold any out: all of them train
            kept, held = np.arange(len(split)), np.arange(0)
        fits.append(Split(split.x[kept].to(bundle.train.x.dtype), split.y[kept]))
        helds.append(Split(split.x[held].to(bundle.val.x.dtype), split.y[held]))

    def cat(parts: list[Split]) -> Split:
        return Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))

    return replace(bundle, train=cat(fits), val=cat(helds), num_classes=len(classes), classes=list(classes))


def prepared(bundle: DataBundle, store_dir: str) -> PreparedData:
    path = cache_dir(store_dir, "data") / f"refit-{bundle.digest}.pt"
    if not path.exists():
        save_atomic(bundle.state_dict(), path)
    return PreparedData(
        path=str(path),
        digest=bundle.digest,
        num_classes=bundle.num_classes,
        input_shape=list(bundle.input_shape),
        sizes={name: len(split) for name, split in bundle.splits().items()},
    )


def champion_tuning(lineage: Lineage) -> TuneResult | None:
    """The champion's best method and hyper-parameters as a search result; None when its run holds none (a
    labels-only champion): the configured ones are used then."""
    best = dict(lineage.best_params)
    method = best.pop("method", None)
    if method is None or "lr" not in best:
        return None
    return TuneResult(
        study_name="champion",
        storage="",
        method=str(method),
        best_params={k: float(v) for k, v in best.items()},
        best_value=None,
        complete=0,
        pruned=0,
        seconds=0.0,
    )


def refit_models(
    lineage: Lineage, settings: RetrainSection, bundle: DataBundle, trains: list[Split], classes: list[str], run_id: str
) -> tuple[TrainedModel, TrainedModel]:
    """The pipeline's teacher, and the better on validation of its KD student and labels-only baseline (as
    `kdflow run` chooses), trained again on all the data; nested runs under `run_id`."""
    from pipelines.stages.distill_final import distill_final
    from pipelines.stages.teacher_logits import compute_teacher_logits
    from pipelines.stages.train_baseline import train_baseline
    from pipelines.stages.train_teacher import train_teacher
    from pipelines.stages.tune_student import tune_student

    cfg = lineage.cfg
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"n_trials": settings.n_trials})})
    joint = joint_bundle(bundle, trains, classes, cfg.data.val_fraction, cfg.data.seed)
    data = prepared(joint, cfg.runtime.store_dir)
    teacher = train_teacher(cfg, data, run_id)
    logits = compute_teacher_logits(cfg, data, teacher)
    baseline = train_baseline(cfg, data, run_id)
    tuned = champion_tuning(lineage) if settings.n_trials == 0 else None
    if tuned is None:  # a new search, or the configured hyper-parameters (n_trials=0 there)
        tuned = tune_student(cfg, data, teacher, logits, run_id)
    student = distill_final(cfg, data, logits, tuned, run_id, teacher)
    role, choice = choose_on_validation(student.val_acc, baseline.val_acc)
    mlflow.set_tags({"kdflow.role": role, "kdflow.choice": choice})
    return teacher, student if role == "student" else baseline
