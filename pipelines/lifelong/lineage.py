"""A pipeline champion's lineage, rebuilt from MLflow: what a retraining starts from.

The champion version of `kdflow-NAME-student` leads to the run that distilled it (its flattened config, its
`best.*` hyper-parameters, `data.digest`), the teacher it was distilled from (`kdflow.teacher_run_id`), its
checkpoint, and, once retrained, the batches it has learned and its strategies' memory. Versions registered by
`kdflow run` before retraining existed carry all of that in their runs' params and tags; retrained versions add
explicit tags (`kdflow.origin_run_id`, `kdflow.learned_batches`, `kdflow.config_digest`, ...).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import torch
import yaml

from kdcore.data import DataBundle
from pipelines.cache.checkpoint import read_checkpoint
from pipelines.config.schema import PipelineConfig
from pipelines.stream import StreamError
from pipelines.stream.readers import BatchError, RawBatch

CHECKPOINT_TAG = "kdflow.checkpoint"
ORIGIN_TAG = "kdflow.origin_run_id"  # the distill run whose config and best params the lineage keeps
TEACHER_RUN_TAG = "kdflow.teacher_run_id"
TEACHER_CHECKPOINT_TAG = "kdflow.teacher_checkpoint"  # a retrained teacher, in the version's own run
STATE_TAG = "kdflow.state"
LEARNED_TAG = "kdflow.learned_batches"
BASE_TAG = "kdflow.base_version"
ORIGINAL_ACC_TAG = "test_acc"  # accuracy on the pipeline's original test split, as `kdflow run` tags it


class LineageError(StreamError):
    """A champion whose lineage cannot be rebuilt; the message names what is missing and the fix."""


def registered_name(pipeline: str) -> str:
    return f"kdflow-{pipeline}-student"


@dataclass
class Lineage:
    pipeline: str
    version: str  # the champion's
    run_id: str  # the champion version's run
    origin_run_id: str  # the distill run of the lineage's first version
    cfg: PipelineConfig
    data_digest: str
    best_params: dict
    student_checkpoint: Path
    teacher_checkpoint: Path | None
    teacher_run_id: str | None
    learned: list[str] = field(default_factory=list)  # batch keys, `stream/batch-id`
    best_original_acc: float | None = None  # the best any version of the lineage reached on the original test split
    state: dict | None = None  # the champion's lifelong state (strategies' memory, matrix), once retrained

    @property
    def config_digest(self) -> str:
        tree = self.cfg.model_dump(exclude={"runtime": {"store_dir", "tracking_uri", "experiment"}, "retrain": True})
        return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def champion_version(pipeline: str):
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(registered_name(pipeline), "champion")
    except mlflow.exceptions.MlflowException:
        raise LineageError(
            f"pipeline {pipeline!r} has no champion ({registered_name(pipeline)}@champion); "
            f"run `kdflow run --preset {pipeline}` first"
        ) from None


def champion_input(pipeline: str) -> dict:
    """What the champion's model reads: {"input_shape", "modality"}, from its checkpoint's spec."""
    v = champion_version(pipeline)
    blob = read_checkpoint(download(v.run_id, v.tags.get(CHECKPOINT_TAG), f"champion v{v.version}'s checkpoint"))
    return {
        "input_shape": list(blob["spec"]["input_shape"]),
        "modality": "text" if blob.get("tokenizer") else "image",
        "version": str(v.version),
    }


def check_fits_champion(pipeline: str, raw: RawBatch) -> None:
    """A batch must fit the model it will update: same modality; for images, the same channels (a different
    size is resized, as the served model does), for feature vectors the same length. New classes are fine."""
    model = champion_input(pipeline)
    champion = f"pipeline {pipeline!r}'s champion v{model['version']}"
    if raw.modality != model["modality"]:
        raise BatchError(
            f"this batch holds {raw.modality}s but {champion} reads {model['modality']}s; "
            "ingest it for a pipeline of that kind"
        )
    if raw.x is None:
        return
    got, want = list(raw.x.shape[1:]), model["input_shape"]
    images = len(got) == len(want) == 3 and min(got[1:] + want[1:]) > 1
    if got != want and not (images and got[0] == want[0]):
        raise BatchError(
            f"inputs of shape {tuple(got)} do not fit {champion}, which reads {tuple(want)}; "
            "convert them (same channels; images of another size are resized) or ingest them for another pipeline"
        )


def download(run_id: str, path: str | None, what: str) -> Path:
    if not path:
        raise LineageError(f"{what} is not recorded (no artifact path); retrain from a version `kdflow run` registered")
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except Exception as e:
        raise LineageError(
            f"{what} ({path} in MLflow run {run_id}) cannot be read ({type(e).__name__}); "
            "the run or its artifacts were deleted: run `kdflow run` again to start a new lineage"
        ) from None


def get_run(run_id: str, what: str):
    try:
        return mlflow.get_run(run_id)
    except Exception:
        raise LineageError(
            f"{what} (MLflow run {run_id}) no longer exists; run `kdflow run` again to start a new lineage"
        ) from None


def config_from_params(params: dict[str, str]) -> PipelineConfig:
    """The resolved pipeline config from a run's flattened params (values parsed as the CLI parses --set)."""
    tree: dict = {}
    for key, text in params.items():
        *parents, leaf = key.split(".")
        model, node, fits = PipelineConfig, tree, True
        for part in parents:
            f = getattr(model, "model_fields", {}).get(part)
            if f is None:
                fits = False
                break
            model, node = f.annotation, node.setdefault(part, {})
        former = leaf in getattr(model, "former_keys", ())  # a section's key of earlier versions, still read
        if not fits or (leaf not in getattr(model, "model_fields", {}) and not former):
            continue  # params other stages add (data.digest, best.*, model.parameters)
        value = yaml.safe_load(text) if text != "" else None
        field = model.model_fields.get(leaf)  # None: a former key, moved by the section's own validator
        if field is not None and field.annotation is str and not isinstance(value, str) and value is not None:
            value = text  # a name that looks like a number stays a name
        node[leaf] = value
    try:
        return PipelineConfig.model_validate(tree)
    except ValueError as e:
        raise LineageError(f"the champion's run params do not make a valid pipeline config ({e})") from None


def teacher_checkpoint_of(run_id: str) -> Path:
    """The checkpoint a `kdflow run` teacher stage logged under `checkpoint/`."""
    try:
        files = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "checkpoint") if a.path.endswith(".pt")]
    except Exception:
        files = []
    return download(run_id, files[0] if files else None, f"the teacher's checkpoint (run {run_id})")


def lineage_best_original(name: str, version) -> float | None:
    """The best original-test-split accuracy along the chain champion -> its base version -> ... -> the first."""
    client, best, seen = mlflow.MlflowClient(), None, set()
    while version is not None and version.version not in seen:
        seen.add(version.version)
        if version.tags.get(ORIGINAL_ACC_TAG):
            acc = float(version.tags[ORIGINAL_ACC_TAG])
            best = acc if best is None else max(best, acc)
        base = version.tags.get(BASE_TAG)
        try:
            version = client.get_model_version(name, base) if base else None
        except mlflow.exceptions.MlflowException:
            version = None
    return best


def rebuild_lineage(pipeline: str, store_dir: str) -> Lineage:
    v = champion_version(pipeline)
    what = f"champion v{v.version} of {registered_name(pipeline)}"
    origin_id = v.tags.get(ORIGIN_TAG) or v.run_id
    origin = get_run(origin_id, f"the run that distilled {what}")
    params = origin.data.params
    cfg = config_from_params(params)
    cfg = cfg.model_copy(
        update={"runtime": cfg.runtime.model_copy(update={"store_dir": store_dir, "tracking_uri": None})}
    )
    digest = params.get("data.digest") or v.tags.get("data.digest")
    if not digest:
        raise LineageError(f"{what} has no data.digest (param or tag); run `kdflow run --preset {pipeline}` again")
    teacher_run_id = v.tags.get(TEACHER_RUN_TAG)
    if teacher_run_id is None and origin.data.tags.get("mlflow.parentRunId"):
        parent = get_run(origin.data.tags["mlflow.parentRunId"], f"the pipeline run of {what}")
        teacher_run_id = parent.data.tags.get(TEACHER_RUN_TAG)
    if v.tags.get(TEACHER_CHECKPOINT_TAG):
        teacher = download(v.run_id, v.tags[TEACHER_CHECKPOINT_TAG], f"the retrained teacher of {what}")
    elif teacher_run_id:
        get_run(teacher_run_id, f"the teacher of {what}")
        teacher = teacher_checkpoint_of(teacher_run_id)
    else:
        teacher = None  # student_only retraining still works; teacher_student says what is missing
    state = None
    if v.tags.get(STATE_TAG):
        path = download(v.run_id, v.tags[STATE_TAG], f"the lifelong state of {what}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    learned = [k for k in v.tags.get(LEARNED_TAG, "").split(",") if k]
    return Lineage(
        pipeline=pipeline,
        version=str(v.version),
        run_id=v.run_id,
        origin_run_id=origin_id,
        cfg=cfg,
        data_digest=digest,
        best_params={k[len("best.") :]: yaml.safe_load(t) for k, t in params.items() if k.startswith("best.")},
        student_checkpoint=download(v.run_id, v.tags.get(CHECKPOINT_TAG), f"the checkpoint of {what}"),
        teacher_checkpoint=teacher,
        teacher_run_id=teacher_run_id,
        learned=learned,
        best_original_acc=lineage_best_original(registered_name(pipeline), v),
        state=state,
    )


def original_data(lineage: Lineage) -> DataBundle:
    """The pipeline's original splits, prepared again from its config (cached), checked against the lineage's digest."""
    from pipelines.stages.prepare_data import prepare_data

    data = prepare_data(lineage.cfg)
    if data.digest != lineage.data_digest:
        raise LineageError(
            f"the original data of pipeline {lineage.pipeline!r} changed (digest {data.digest}, the champion learned "
            f"{lineage.data_digest}); restore it (data.root) or run `kdflow run --preset {lineage.pipeline}` again"
        )
    return DataBundle.load(data.path)
