"""Log a text model to MLflow as a pyfunc that scores raw strings (the tokenizer travels with it)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import torch

import kdcore
from kdcore.data import DataBundle
from kdcore.text.tokenizer import Tokenizer

MODEL_CODE = Path(__file__).with_name("text_pyfunc_model.py")


def example_texts(bundle: DataBundle, n: int = 2) -> list[str]:
    """Train texts rebuilt from their ids: valid raw input that the model has seen the words of."""
    tokenizer = Tokenizer.from_state_dict(bundle.tokenizer)
    return [tokenizer.decode(row) or "unknown" for row in bundle.train.x[:n]]


def log_text_model(checkpoint: Path, bundle: DataBundle) -> mlflow.models.model.ModelInfo:
    return log_text_classifier(checkpoint, bundle.tokenizer, list(bundle.classes), example_texts(bundle))


def log_text_classifier(
    checkpoint: Path, tokenizer: dict, classes: list[str], examples: list[str]
) -> mlflow.models.model.ModelInfo:
    """`checkpoint` holds {"spec", "state_dict"}; the logged model maps raw strings to class names."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "tokenizer.json"
        vocab.write_text(json.dumps({**tokenizer, "classes": list(classes)}))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"checkpoint": str(checkpoint), "tokenizer": str(vocab)},
            code_paths=[str(Path(kdcore.__file__).parent)],  # loadable where kdflow is not installed
            input_example=examples,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "scikit-learn"],
        )
