"""Retraining a pipeline's champion on the batches it has not learned: `kdflow retrain --pipeline NAME`.

The new version of `kdflow-NAME-student` starts from the champion version and its lineage (lineage.py): the
pipeline's own models, optimiser, learning rate (its best one), epochs, batch size and device; new batches go
through the champion's own input view (its train-split mean/std, its resize, or its vocabulary). It is evaluated
on the original test split and every batch's test part, registered through the one registration path, and
becomes the champion only if `lifecycle_decision` says so. Nothing is written to the registry until the version
is complete: a killed retraining changes nothing, and the next one learns the batches again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import torch

from kdcore.data.bundle import Split
from kdcore.data.image_input import ImagePreprocessing
from kdcore.device import resolve_device
from kdcore.lifelong import accuracy_row, build_strategy, grow_head, summarise
from kdcore.lifelong.head import last_linear
from kdcore.lifelong.remember import remember
from kdcore.text.tokenizer import Tokenizer
from kdcore.train import TrainSettings
from pipelines.cache.checkpoint import load_model, read_checkpoint, save_model
from pipelines.config.overrides import merge
from pipelines.config.schema import RetrainSection, former_retrain_keys_moved
from pipelines.lifelong import lineage as tags
from pipelines.lifelong.heatmap import save_heatmap
from pipelines.lifelong.lineage import Lineage, LineageError, original_data, rebuild_lineage, registered_name
from pipelines.lifelong.promotion import lifecycle_decision
from pipelines.lifelong.refit_policy import refit_models
from pipelines.lifelong.strategies import learn_task, strategy_options
from pipelines.lifelong.token_width import to_width
from pipelines.registry.gate import Candidate, eval_digest
from pipelines.registry.model_card import retrain_card
from pipelines.registry.onnx_export import log_export
from pipelines.registry.registration import ServedInput, class_names, eight_bit, log_served_model, register_version
from pipelines.stream import pipeline_batches
from pipelines.tracking.run_liveness import liveness_tags
from pipelines.tracking.runs import loggable_params, setup_experiment

log = logging.getLogger("kdflow")
ORIGINAL = "original"  # the name of the pipeline's own test split among the test parts


@dataclass
class PipelineRetrainResult:
    pipeline: str
    status: str  # "retrained" | "up-to-date" | "no-data" | "already-tried"
    reason: str
    new_batches: list[str] = field(default_factory=list)
    learned_batches: list[str] = field(default_factory=list)
    version: str | None = None
    promoted: bool = False
    champion_version: str | None = None
    parts: list[str] = field(default_factory=list)  # columns of the matrix: "original", then batch keys
    matrix: list[list[float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    part_accuracies: dict[str, float] = field(default_factory=dict)  # the new version's, per test part
    champion_part_accuracies: dict[str, float] = field(default_factory=dict)  # the champion's, re-scored now
    run_id: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["matrix"] = [[None if math.isnan(v) else v for v in row] for row in self.matrix]
        return d


def model_out(model: torch.nn.Module) -> int:
    """Classes the model's head scores now (a batch of new classes widens it)."""
    return last_linear(model)[2].out_features


def store_tracking_uri(store_dir: str) -> str:
    """Where `kdflow run` with runtime.store_dir=`store_dir` tracks (MLFLOW_TRACKING_URI wins, as there)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(store_dir).resolve() / 'mlflow.db'}"


@contextmanager
def pipeline_lock(store_dir: str, pipeline: str) -> Iterator[None]:
    """One retraining per pipeline at a time (flock: the OS releases it if the holder is killed)."""
    folder = Path(store_dir) / "pipelines" / pipeline
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".retrain.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retrain_settings(lineage: Lineage, changes: dict | None) -> RetrainSection:
    """The lineage's retrain section with `changes` on top, option by option (a strategy's section is not replaced
    whole)."""
    return RetrainSection.model_validate(
        merge(lineage.cfg.retrain.model_dump(), former_retrain_keys_moved(changes or {}))
    )


def retrain_pipeline(
    pipeline: str,
    store_dir: str = "mlruns",
    changes: dict | None = None,
    on_batch: Callable[[str], None] | None = None,
    flow_run_tags: dict[str, str] | None = None,
) -> PipelineRetrainResult:
    """Learn every batch bound to `pipeline` that its champion has not; register; move `champion` by the decision.

    `changes`: retrain.* settings for this run (strategy, mode, tolerance, ...). `on_batch(key)` runs after each
    batch is learned (progress; tests inject a kill there).
    """
    RetrainSection.model_validate(changes or {})  # a bad setting fails before any work
    store_dir = str(Path(store_dir).resolve())
    mlflow.set_tracking_uri(store_tracking_uri(store_dir))
    with pipeline_lock(store_dir, pipeline):
        lineage = rebuild_lineage(pipeline, store_dir)
        settings = retrain_settings(lineage, changes)
        batches = pipeline_batches(store_dir, pipeline)
        if not batches:
            return PipelineRetrainResult(
                pipeline,
                "no-data",
                f"no batch is bound to pipeline {pipeline!r} in {store_dir}; "
                f"add one with `kdflow ingest PATH --pipeline {pipeline}`",
                champion_version=lineage.version,
            )
        new = [(k, b) for k, b in batches if k not in lineage.learned]
        if not new:
            return PipelineRetrainResult(
                pipeline,
                "up-to-date",
                f"champion v{lineage.version} has learned all {len(lineage.learned)} batches",
                learned_batches=lineage.learned,
                champion_version=lineage.version,
            )
        target = lineage.learned + [k for k, _ in new]
        tried = already_tried(lineage, target, settings)
        if tried is not None:
            return PipelineRetrainResult(
                pipeline,
                "already-tried",
                f"v{tried.version} was already built from champion v{lineage.version} on these batches with these "
                f"settings: {tried.tags.get('champion_decision', '')}",
                new_batches=[k for k, _ in new],
                learned_batches=lineage.learned,
                version=str(tried.version),
                champion_version=lineage.version,
            )
        return learn_new(lineage, settings, dict(batches), new, on_batch, flow_run_tags or {})


def settings_digest(lineage: Lineage, settings: RetrainSection) -> str:
    """What decides a retraining's outcome besides its inputs: the lineage's config and the retrain settings."""
    fields = {"config": lineage.config_digest, **settings.model_dump(exclude={"tolerance"})}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def already_tried(lineage: Lineage, target: list[str], settings: RetrainSection):
    """A version already built from this champion on these batches with these settings (a cron run is idempotent)."""
    digest = settings_digest(lineage, settings)
    for v in mlflow.MlflowClient().search_model_versions(f"name = '{registered_name(lineage.pipeline)}'"):
        t = v.tags
        if (
            t.get(tags.BASE_TAG) == lineage.version
            and t.get(tags.LEARNED_TAG) == ",".join(target)
            and t.get("kdflow.retrain_digest") == digest
            and t.get("kdflow.tolerance") == f"{settings.tolerance:g}"
        ):
            return v
    return None


def stored_pixels(pre: ImagePreprocessing, x: torch.Tensor) -> torch.Tensor:
    """Batch pixels ([0, 1] floats, as ingest stores them) in the form the champion's data is stored in:
    its levels, resized when the size differs."""
    if tuple(x.shape[1:]) == (pre.channels, *pre.size):
        return torch.round(x.clamp(0, 1) * pre.levels).to(torch.uint8)
    eight = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return torch.from_numpy(np.stack([pre.stored(im) for im in eight]))


def image_inputs(pre: ImagePreprocessing, x: torch.Tensor) -> torch.Tensor:
    """Batch pixels through the champion's own preprocessing and view: its train-split mean and std (never
    recomputed)."""
    return pre.view.normalise(stored_pixels(pre, x)).float()


def strategy_for(settings: RetrainSection, state: dict | None, role: str, model, learned: Split, temperature: float):
    strategy = build_strategy(settings.strategy, **strategy_options(settings, temperature))
    saved = (state or {}).get(f"{role}_strategy")
    if saved is not None and saved.get("name") == settings.strategy:
        strategy.load_state_dict(saved)  # carried from version to version (the DER++ buffer)
        return strategy
    return remember(strategy, model, learned)  # the data the champion learned counts as its first task


def learn_settings(lineage: Lineage, role: str, device: str) -> TrainSettings:
    """The pipeline's own training settings for `role` at a constant learning rate; the student's is its tuned best."""
    cfg, p = lineage.cfg, lineage.best_params
    train = getattr(cfg, role).train
    best = role == "student"
    return TrainSettings(
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=float(p.get("lr", train.lr)) if best else train.lr,
        weight_decay=float(p.get("weight_decay", train.weight_decay)) if best else train.weight_decay,
        optimizer=train.optimizer,
        momentum=train.momentum if train.optimizer == "sgd" else 0.0,
        schedule="constant",
        seed=cfg.runtime.seed,
        device=device,
    )


def kd_temperature(lineage: Lineage) -> float:
    return float(lineage.best_params.get("temperature", lineage.cfg.distill.temperature))


def learn_new(lineage: Lineage, settings: RetrainSection, by_key: dict, new: list, on_batch, run_tags):
    started = time.perf_counter()
    cfg, pipeline = lineage.cfg, lineage.pipeline
    bundle = original_data(lineage)
    device = str(resolve_device(cfg.runtime.device))
    state = lineage.state or {}
    tokenizer = Tokenizer.from_state_dict(bundle.tokenizer) if bundle.tokenizer else None
    pre = None if tokenizer else ImagePreprocessing.for_data(bundle.input_shape, bundle.view)
    classes = list(state.get("classes") or class_names(bundle))
    for _, b in new:
        classes += [c for c in b.classes if c not in classes]
    index = {c: i for i, c in enumerate(classes)}

    def part(key: str, name: str, stored: bool = False) -> Split:
        if key not in by_key:
            raise LineageError(f"batch {key}, learned by champion v{lineage.version}, is no longer in the store")
        split = by_key[key].load(name, index, tokenizer)
        if tokenizer:
            return split
        return Split((stored_pixels if stored else image_inputs)(pre, split.x), split.y)

    def original(name: str) -> Split:
        split = bundle.inputs(name)
        return to_width(split, tokenizer.max_len) if tokenizer else split

    continual = settings.policy == "continual"
    method = settings.strategy if continual else "refit"
    if not continual and lineage.cfg.teacher.arch == "hf":  # refit would train it on stored kdflow token ids
        raise LineageError(
            f"pipeline {lineage.cfg.name} has a Hugging Face teacher, which retrain.policy=refit cannot retrain from "
            "stored batches; use retrain.policy=continual with retrain.mode=student_only"
        )

    spec = read_checkpoint(lineage.student_checkpoint)["spec"]
    student, champion = load_model(lineage.student_checkpoint), load_model(lineage.student_checkpoint)
    teacher, t_spec = None, None
    if continual and settings.mode == "teacher_student":  # refit trains its own teacher
        if lineage.teacher_checkpoint is None:
            raise LineageError(
                f"the teacher of champion v{lineage.version} cannot be found (no kdflow.teacher_run_id on its runs); "
                "set retrain.mode=student_only or run `kdflow run` again"
            )
        t_spec = read_checkpoint(lineage.teacher_checkpoint)["spec"]
        if t_spec["arch"] == "hf":  # it reads its own tokenizer's ids, which the stored batches do not hold
            raise LineageError(
                f"the teacher of champion v{lineage.version} is a Hugging Face model (teacher.arch=hf), which "
                "retraining cannot run on stored token ids; set retrain.mode=student_only"
            )
        teacher = load_model(lineage.teacher_checkpoint)
    s_settings = learn_settings(lineage, "student", device)
    temperature = kd_temperature(lineage)
    s_strategy = t_strategy = None
    if continual:
        learned_split = original("train")
        s_strategy = strategy_for(settings, state, "student", student, learned_split, temperature)
        t_strategy = teacher and strategy_for(settings, state, "teacher", teacher, learned_split, temperature)
    parts = [ORIGINAL] + lineage.learned
    tests = [original("test")] + [part(k, "test") for k in lineage.learned]
    matrix = [list(map(lambda v: math.nan if v is None else v, r)) for r in state.get("matrix", [])]
    if not matrix:  # the champion of `kdflow run`: its row on the original test split
        matrix = [accuracy_row(champion, tests[:1])]
    experiment_id = setup_experiment(cfg)
    run_tags = {"kdflow.pipeline": pipeline, tags.BASE_TAG: lineage.version, **run_tags, **liveness_tags()}
    run_name = f"retrain-{pipeline}-{new[-1][0].replace('/', '-')}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        mlflow.log_params(loggable_params(cfg.model_copy(update={"retrain": settings})))
        mlflow.log_params(
            {
                "data.digest": lineage.data_digest,
                "retrain.base_version": lineage.version,
                "retrain.new_batches": ",".join(k for k, _ in new)[:500],
                "retrain.device": device,
                **{f"best.{k}": v for k, v in lineage.best_params.items()},
            }
        )
        if not continual:
            keys = lineage.learned + [k for k, _ in new]
            trains = [part(k, "train", stored=tokenizer is None) for k in keys]
            t_run, s_run = refit_models(lineage, settings, bundle, trains, classes, run.info.run_id)
            student, spec = load_model(s_run.checkpoint), read_checkpoint(s_run.checkpoint)["spec"]
            teacher, t_spec = load_model(t_run.checkpoint), read_checkpoint(t_run.checkpoint)["spec"]
            parts += [k for k, _ in new]
            tests += [part(k, "test") for k, _ in new]
            row = accuracy_row(student, tests)
            matrix = [r + [math.nan] * (len(tests) - len(r)) for r in matrix] + [row]
            mlflow.log_metrics({"lifelong/original_acc": row[0], "lifelong/current_acc": row[-1]}, step=len(matrix) - 1)
            log.info("retrain %s: refit on %d batches  original %.4f", pipeline, len(keys), row[0])
        for key, b in new if continual else ():  # refit learned them all above
            for model in filter(None, (student, teacher)):  # new classes widen the head, keeping the old rows
                grow_head(model, max(model_out(model), max(index[c] for c in b.classes) + 1), seed=cfg.runtime.seed)
            train = part(key, "train")
            if teacher is not None:
                t_terms = learn_task(teacher, t_strategy, train, learn_settings(lineage, "teacher", device))
                mlflow.log_metrics({f"teacher/{k}": v for k, v in t_terms.items()}, step=len(matrix))
            s_terms = learn_task(student, s_strategy, train, s_settings, teacher=teacher, temperature=temperature)
            parts.append(key)
            tests.append(part(key, "test"))
            row = accuracy_row(student, tests)
            matrix = [r + [math.nan] * (len(tests) - len(r)) for r in matrix] + [row]
            scores = summarise(matrix)
            mlflow.log_metrics(
                {
                    **{f"lifelong/{k}": v for k, v in scores.items()},
                    **{f"student/{k}": v for k, v in s_terms.items()},
                    "lifelong/original_acc": row[0],
                    "lifelong/current_acc": row[-1],
                },
                step=len(matrix) - 1,
            )
            log.info("retrain %s: learned %s  avg acc %.4f  original %.4f", pipeline, key, scores["avg_acc"], row[0])
            if on_batch is not None:
                on_batch(key)
        scores = summarise(matrix)
        accs = dict(zip(parts, matrix[-1]))
        champion_accs = dict(zip(parts, accuracy_row(champion, tests)))
        champion_avg = sum(champion_accs.values()) / len(champion_accs)
        best_original = max(filter(None, (lineage.best_original_acc, champion_accs[ORIGINAL])))
        decision = lifecycle_decision(
            accs[ORIGINAL],
            best_original,
            sum(accs.values()) / len(accs),
            champion_avg,
            lineage.version,
            settings.tolerance,
        )
        mlflow.log_metrics(
            {
                "final/avg_acc": scores["avg_acc"],
                "final/bwt": scores["bwt"],
                "final/forgetting": scores["forgetting"],
                "final/original_acc": accs[ORIGINAL],
                "champion/avg_acc": champion_avg,
                "champion/original_acc": champion_accs[ORIGINAL],
                "seconds": time.perf_counter() - started,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            info = log_version(Path(tmp), student, spec, teacher, t_spec, bundle, classes, tokenizer, pre)
            blob = {
                **({"student_strategy": s_strategy.state_dict()} if s_strategy is not None else {}),
                "classes": classes,
                "parts": parts,
                "matrix": [list(map(float, r)) for r in matrix],
            }
            if t_strategy is not None:
                blob["teacher_strategy"] = t_strategy.state_dict()
            torch.save(blob, Path(tmp) / "state.pt")
            mlflow.log_artifact(str(Path(tmp) / "state.pt"), artifact_path="lifelong")
            mlflow.log_dict(
                {
                    "parts": parts,
                    "classes": classes,
                    "matrix": [[None if math.isnan(v) else v for v in r] for r in matrix],
                },
                "lifelong/accuracy_matrix.json",
            )
            title = f"{pipeline} / {method}: avg acc {scores['avg_acc']:.3f}"
            save_heatmap(matrix, parts, Path(tmp) / "accuracy_matrix.png", title)
            mlflow.log_artifact(str(Path(tmp) / "accuracy_matrix.png"), artifact_path="lifelong")
    export = log_export(student, bundle, run.info.run_id)
    version_tags = {
        tags.LEARNED_TAG: ",".join(parts[1:]),
        tags.BASE_TAG: lineage.version,
        tags.ORIGIN_TAG: lineage.origin_run_id,
        tags.CHECKPOINT_TAG: "checkpoint/student.pt",
        tags.STATE_TAG: "lifelong/state.pt",
        tags.ORIGINAL_ACC_TAG: f"{accs[ORIGINAL]:.6f}",
        "data.digest": lineage.data_digest,
        "kdflow.avg_acc": f"{scores['avg_acc']:.6f}",
        "kdflow.forgetting": f"{scores['forgetting']:.6f}",
        "kdflow.strategy": method,
        "kdflow.config_digest": lineage.config_digest,
        "kdflow.retrain_digest": settings_digest(lineage, settings),
        "kdflow.tolerance": f"{settings.tolerance:g}",
        "mlflow_run_id": run.info.run_id,
        **export.tags(),  # its ONNX file and parity, or why there is none
    }
    if teacher is not None:
        version_tags[tags.TEACHER_CHECKPOINT_TAG] = "lifelong/teacher.pt"
        version_tags[tags.TEACHER_RUN_TAG] = lineage.teacher_run_id or ""
    elif lineage.teacher_run_id:
        version_tags[tags.TEACHER_RUN_TAG] = lineage.teacher_run_id
    # the alias moves last, through the one registration path and its gate, under the model's lock: the gate
    # compares on the original test split (same digest as the pipeline's versions), `decision` adds the average
    candidate = Candidate(
        model_uri=info.model_uri,
        acc=accs[ORIGINAL],
        eval_digest=eval_digest(bundle.test, tokenizer=bundle.tokenizer),
        metric="original test acc",
        tags=version_tags,
        champion_rescored=(lineage.version, champion_accs[ORIGINAL]),
    )
    gated = register_version(registered_name(pipeline), candidate, settings.tolerance, run.info.run_id, decision)
    decision, version = (gated.promote, gated.reason), gated.version
    client = mlflow.MlflowClient()
    client.set_tag(run.info.run_id, "kdflow.promoted", str(gated.promote).lower())
    card = retrain_card(
        pipeline,
        lineage.version,
        method,
        lineage.data_digest,
        classes,
        parts,
        accs,
        champion_accs,
        scores,
        export,
        gated,
    )
    client.update_model_version(registered_name(pipeline), gated.version, description=card)
    client.set_tag(run.info.run_id, "kdflow.decision", gated.reason)
    return PipelineRetrainResult(
        pipeline,
        "retrained",
        decision[1],
        new_batches=[k for k, _ in new],
        learned_batches=parts[1:],
        version=version,
        promoted=decision[0],
        champion_version=version if decision[0] else lineage.version,
        parts=parts,
        matrix=matrix,
        metrics=scores,
        part_accuracies=accs,
        champion_part_accuracies=champion_accs,
        run_id=run.info.run_id,
    )


def save_as(model, spec: dict, path: Path, tokenizer: dict | None) -> Path:
    model.cpu().eval()
    return save_model(model, spec["arch"], spec["input_shape"], model_out(model), spec["options"], path, tokenizer)


def log_version(tmp: Path, student, spec, teacher, t_spec, bundle, classes, tokenizer, pre):
    """The student's checkpoint (and the updated teacher's) and the served model, in the active run."""
    checkpoint = save_as(student, spec, tmp / "student.pt", bundle.tokenizer)
    mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
    if teacher is not None:
        mlflow.log_artifact(
            str(save_as(teacher, t_spec, tmp / "teacher.pt", bundle.tokenizer)), artifact_path="lifelong"
        )
    if tokenizer is not None:
        texts = [tokenizer.decode(r) or "unknown" for r in bundle.train.x[:2]]
        served = ServedInput(classes, texts, tokenizer=bundle.tokenizer)
    else:
        served = ServedInput(classes, eight_bit(bundle.train.x[:2], pre.levels), preprocessing=pre)
    return log_served_model(checkpoint, served)
