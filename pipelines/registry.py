"""The one way a trained model becomes an MLflow model and a registered version.

Every logged student (the distillation pipeline's, the lifelong retraining's) goes through `log_served_model`,
which decides its format: an MLflow pyfunc that takes what a user has (raw images or raw strings) and answers
class names and probabilities, with the preprocessing, the class names and kdcore inside it, so it loads
where kdflow is not installed. Every registered version goes through `register_version`, which applies the
decision of a gate. Models registered before this (bare `mlflow.pytorch` models) still load as they were.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
from dataclasses import dataclass
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


def champion_gate(
    acc: float, champion_acc: float | None, champion_version: str | None, champion_error: str | None
) -> tuple[bool, str]:
    """Whether a new version becomes the champion, and why: the rule of the distillation pipeline today."""
    if champion_version is None:
        return True, "no champion yet"
    if champion_error is not None:
        return False, f"champion v{champion_version} could not be scored on this test split ({champion_error}); kept"
    if acc > champion_acc:
        return True, (
            f"test/acc {acc:.4f} beats champion v{champion_version} ({champion_acc:.4f}) on the same test split"
        )
    return False, f"test/acc {acc:.4f} does not beat champion v{champion_version} ({champion_acc:.4f})"


def register_version(model_uri: str, name: str, tags: dict[str, str], decision: tuple[bool, str]) -> str:
    """Register `model_uri` as a new version of `name` with `tags` and the gate's decision; the `champion`
    alias moves last, only if the decision says so. Returns the version."""
    promote, reason = decision
    version = mlflow.register_model(model_uri, name, tags={**tags, "champion_decision": reason})
    if promote:
        mlflow.MlflowClient().set_registered_model_alias(name, "champion", version.version)
    log.info("register: %s v%s; champion %s: %s", name, version.version, "moved" if promote else "kept", reason)
    return str(version.version)
