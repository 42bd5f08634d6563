"""The one way a trained model becomes an MLflow model and a registered version.

Every logged student (the distillation pipeline's, the lifelong retraining's) goes through `log_served_model`,
which decides its format: an MLflow pyfunc that takes what a user has (raw images or raw strings) and answers
class names and probabilities, with the preprocessing, the class names and kdcore inside it, so it loads
where kdflow is not installed. Every registered version goes through `register_version`, which applies the
one gate (pipelines/registry/gate.py) under its lock. Models registered before this (bare `mlflow.pytorch` models) still
load as they were.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

import kdcore
from kdcore.class_probabilities import probability_column
from kdcore.data import DataBundle
from kdcore.data.image_input import ImagePreprocessing
from kdcore.text.tokenizer import Tokenizer
from pipelines.registry.gate import (
    PROMOTION_RUN_TAG,
    Candidate,
    Decision,
    decide,
    promotion_line,
    promotion_lock,
    read_champion,
    read_versions,
    version_tags,
)

log = logging.getLogger("kdflow")

MODEL_CODE = {
    "image": Path(__file__).with_name("image_pyfunc_model.py"),
    "text": Path(__file__).with_name("text_pyfunc_model.py"),
}
MODALITY_KEY = "kdflow.modality"  # in the MLmodel metadata: what `kdflow predict` may send the model
CLASSES_KEY = "kdflow.classes"


@dataclass(frozen=True)
class ServedInput:
    """What a served model needs besides its weights: class names, and the tokenizer or the image preprocessing.

    `examples`: two raw inputs for the logged input example (texts, or 8-bit (C, H, W) uint8 arrays).
    """

    classes: list[str]
    examples: list
    tokenizer: dict | None = None
    preprocessing: ImagePreprocessing | None = None

    @property
    def modality(self) -> str:
        return "text" if self.tokenizer is not None else "image"

    @classmethod
    def of_bundle(cls, bundle: DataBundle) -> ServedInput:
        if bundle.tokenizer is not None:
            tokenizer = Tokenizer.from_state_dict(bundle.tokenizer)
            texts = [tokenizer.decode(row) or "unknown" for row in bundle.train.x[:2]]
            return cls(list(bundle.classes), texts, tokenizer=bundle.tokenizer)
        pre = ImagePreprocessing.for_data(bundle.input_shape, bundle.view)
        return cls(class_names(bundle), eight_bit(bundle.train.x[:2], pre.levels), preprocessing=pre)


def class_names(bundle: DataBundle) -> list[str]:
    return list(bundle.classes) or [str(i) for i in range(bundle.num_classes)]


def eight_bit(stored: torch.Tensor, levels: int) -> list[np.ndarray]:
    """Stored pixels (0..levels) as the 8-bit images a user would send (digits: 0..16 -> 0..255)."""
    x = stored.to(torch.float64) * 255 / levels
    return list(x.round().clamp(0, 255).to(torch.uint8).numpy())


def png_base64(chw: np.ndarray) -> str:
    """A (C, H, W) uint8 image as base64 PNG text: what `mlflow models serve` receives in an `image` column."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def signature(served: ServedInput) -> ModelSignature:
    columns = [ColSpec(DataType.string, "class"), ColSpec(DataType.double, "probability")]
    columns += [ColSpec(DataType.double, probability_column(c)) for c in served.classes]
    if served.modality == "text":
        inputs = Schema([ColSpec(DataType.string)])
    else:  # any: base64 text from JSON, bytes or 8-bit arrays in process (a `binary` column would refuse arrays)
        inputs = Schema([ColSpec(AnyType(), "image")])
    return ModelSignature(inputs=inputs, outputs=Schema(columns))


def log_served_model(checkpoint: Path, served: ServedInput) -> mlflow.models.model.ModelInfo:
    """Log `checkpoint` ({"spec", "state_dict"}) as a pyfunc on raw inputs, in the active run, under `model`."""
    with tempfile.TemporaryDirectory() as tmp:
        if served.modality == "text":
            meta = Path(tmp) / "tokenizer.json"
            meta.write_text(json.dumps({**served.tokenizer, "classes": list(served.classes)}))
            artifacts, example = {"checkpoint": str(checkpoint), "tokenizer": str(meta)}, list(served.examples)
        else:
            meta = Path(tmp) / "preprocessing.json"
            meta.write_text(json.dumps({"preprocessing": served.preprocessing.state_dict(), "classes": served.classes}))
            artifacts = {"checkpoint": str(checkpoint), "preprocessing": str(meta)}
            example = {"image": [png_base64(x) for x in served.examples]}
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE[served.modality]),
            artifacts=artifacts,
            code_paths=[str(Path(kdcore.__file__).parent)],  # loadable where kdflow is not installed
            input_example=example,
            signature=signature(served),
            metadata={MODALITY_KEY: served.modality, CLASSES_KEY: list(served.classes)},
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                "torchvision",
                "numpy",
                "pandas",
                "pillow",
                "scikit-learn",
            ],
        )


def register_version(
    name: str,
    candidate: Candidate,
    tolerance: float,
    run_id: str | None = None,
    also: tuple[bool, str] | None = None,
) -> Decision:
    """Register `candidate` as a new version of `name`; the `champion` alias moves last, only if the gate says so.

    Under one lock per registered model: read the champion and the versions -> decide -> register -> move the
    alias. The decision and its reason are the version's `champion_decision` tag and `run_id`'s `kdflow.promotion`.
    `also`: a condition of the caller's that must hold as well, with its reason (a retraining's average over every
    test part against the champion re-scored there).
    """
    client = mlflow.MlflowClient()
    with promotion_lock(name):
        decision = decide(candidate, read_champion(client, name), read_versions(client, name), tolerance)
        if also is not None:
            promote = decision.promote and also[0]
            reason = also[1] if decision.promote or not also[0] else f"{decision.reason}; {also[1]}"
            decision = replace(decision, promote=promote, reason=reason)
        # MLflow prints "Successfully registered model ..." to stderr itself; the log line below says it once
        with contextlib.redirect_stderr(io.StringIO()) as said:
            version = mlflow.register_model(candidate.model_uri, name, tags=version_tags(candidate, decision))
        log.debug(said.getvalue().strip())
        decision = replace(decision, version=str(version.version))
        if decision.promote:
            client.set_registered_model_alias(name, "champion", version.version)
    if run_id is not None:
        client.set_tag(run_id, PROMOTION_RUN_TAG, promotion_line(name, decision))
    log.info("register: %s", promotion_line(name, decision))
    return decision


def split_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`NAME`, `NAME@ALIAS` or `NAME/VERSION` (with or without `models:/`) as (name, alias, version)."""
    ref = ref.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        return name, None, version
    return ref, None, None
