"""Model checkpoints that rebuild from the registry and load with weights_only=True."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from kdcore.models import model_from_checkpoint
from pipelines.cache.keys import record_entry


def save_atomic(obj: Any, path: Path) -> Path:
    """torch.save to a temporary file, record its size and sha256 beside it, then rename: a reader never sees
    a half-written file, and a file damaged later is caught by `pipelines.cache.keys.verified_entry`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        record_entry(Path(tmp), path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_model(
    model: nn.Module, arch: str, input_shape, num_classes: int, options: dict, path: Path, tokenizer: dict | None = None
) -> Path:
    spec = {"arch": arch, "input_shape": list(input_shape), "num_classes": num_classes, "options": dict(options)}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    extra = {} if tokenizer is None else {"tokenizer": tokenizer}  # text: the ids mean these words
    return save_atomic({"spec": spec, "state_dict": state, **extra}, path)


def checkpoint_tokenizer(path: str | Path) -> dict | None:
    """The vocabulary a text model was trained with (None for other models)."""
    return torch.load(path, map_location="cpu", weights_only=True).get("tokenizer")


def read_checkpoint(path: str | Path) -> dict:
    if not Path(path).is_file():
        raise ValueError(f"checkpoint {path} does not exist; check the path")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}); delete it to retrain") from None
    if not isinstance(blob, dict) or not {"spec", "state_dict"} <= set(blob):
        raise ValueError(
            f"{path} is not a kdflow checkpoint (no spec and state_dict); "
            "save models with pipelines.cache.checkpoint.save_model"
        )
    return blob


def read_spec(path: str | Path) -> dict:
    """What a checkpoint was built for: arch, input_shape, num_classes, options."""
    return read_checkpoint(path)["spec"]


def weights_digest(path: str | Path) -> str:
    """Hash of what a checkpoint computes (spec and weights), not of its bytes: torch.save writes the file's
    own name into the archive, so the same teacher saved twice has other bytes but the same digest."""
    blob = read_checkpoint(path)
    h = hashlib.sha256(json.dumps(blob["spec"], sort_keys=True).encode())
    for name, tensor in sorted(blob["state_dict"].items()):
        h.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
        h.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(path: str | Path) -> nn.Module:
    return model_from_checkpoint(read_checkpoint(path))
