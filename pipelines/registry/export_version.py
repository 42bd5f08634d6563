"""`kdflow export`: the ONNX file of any registered version, read from its run, or exported now from its
checkpoint for a version registered before exports existed."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from mlflow.entities.model_registry import ModelVersion

from kdcore.models.text import TEXT_MODELS
from kdcore.text.tokenizer import UNK_ID
from pipelines.cache.checkpoint import load_model, read_spec
from pipelines.registry.onnx_export import (
    ERROR_TAG,
    ONNX_TAG,
    PREPROCESSING_FILE,
    OnnxExportError,
    export_onnx,
)
from pipelines.registry.registration import split_model_ref


class ExportError(ValueError):
    """A model that cannot be exported as asked; the message names it and the fix."""


@dataclass(frozen=True)
class Exported:
    name: str
    version: str
    output: Path
    preprocessing: Path | None  # written beside the file; None: exported now, without the data at hand
    parity: str  # the version's parity record, or why there is none


def resolve_version(model: str) -> ModelVersion:
    """NAME (its champion, else its latest version), NAME@ALIAS, NAME/VERSION, or any of them as models:/..."""
    client = mlflow.MlflowClient()
    name, alias, number = split_model_ref(model)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        raise ExportError(
            f"no registered model {name} in {mlflow.get_tracking_uri()}; check the name (kdflow models lists them) "
            "or MLFLOW_TRACKING_URI"
        ) from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if number is not None:
            return client.get_model_version(name, number)
    except mlflow.exceptions.MlflowException:
        what = f"alias @{alias}" if alias is not None else f"version {number}"
        raise ExportError(f"{name} has no {what}; pick one of its versions with {name}/<version>") from None
    try:
        return client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise ExportError(f"{name} has no versions; run its pipeline first") from None
        return max(versions, key=lambda v: int(v.version))


def export_version(model: str, output: Path) -> Exported:
    mv = resolve_version(model)
    tags, run_id = mv.tags, mv.tags.get("mlflow_run_id") or mv.run_id
    if ERROR_TAG in tags:
        raise ExportError(f"{mv.name} v{mv.version} could not be exported to ONNX when registered: {tags[ERROR_TAG]}")
    output.parent.mkdir(parents=True, exist_ok=True)
    beside = output.with_name(f"{output.stem}.{PREPROCESSING_FILE}")
    with tempfile.TemporaryDirectory() as tmp:
        if ONNX_TAG in tags:
            folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="onnx", dst_path=tmp))
            shutil.copyfile(folder / Path(tags[ONNX_TAG]).name, output)
            shutil.copyfile(folder / PREPROCESSING_FILE, beside)
            return Exported(mv.name, mv.version, output, beside, tags.get("kdflow.onnx.parity", "not recorded"))
        if "kdflow.checkpoint" not in tags:
            raise ExportError(
                f"{mv.name} v{mv.version} has neither an ONNX export nor a kdflow checkpoint; "
                "register a new version with `kdflow run`"
            )
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=tags["kdflow.checkpoint"], dst_path=tmp)
        try:
            export_onnx(load_model(path), example_input(read_spec(path)), output)
        except OnnxExportError as e:
            raise ExportError(f"{mv.name} v{mv.version} cannot be exported to ONNX: {e}") from None
    return Exported(mv.name, mv.version, output, None, "not checked: registered before exports, no test data at hand")


def example_input(spec: dict) -> torch.Tensor:
    """Two inputs of the shape the checkpoint was built for: images, or full-width rows of token ids."""
    shape = (2, *spec["input_shape"])
    return torch.full(shape, UNK_ID, dtype=torch.long) if spec["arch"] in TEXT_MODELS else torch.zeros(shape)
