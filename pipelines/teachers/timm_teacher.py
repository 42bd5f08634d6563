"""teacher.arch=timm: a timm model with its pretrained weights, its head reset for the data's classes.

teacher.pretrained is `timm:<name>` (or the bare name; weights from the Hugging Face hub into HF_HOME when
data.download allows) or a folder written by `timm.models.save_for_hf(model, FOLDER)` (config.json naming the
architecture and its pretrained_cfg, and the weights). The preprocessing comes from the weights' pretrained_cfg
(input size, crop_pct, mean/std) and is applied inside the teacher by kdflow's InputAdapter.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch.nn as nn

from kdcore.models.pretrained import Preprocessing
from kdcore.models.timm_models import timm_name
from pipelines.config.schema import ConfigError, TeacherConfig

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def timm_module():
    try:
        import timm
    except ImportError:
        raise ConfigError("teacher.arch=timm needs the timm package; install it with pip install timm") from None
    return timm


def folder_architecture(folder: Path) -> str:
    config = folder / "config.json"
    if not config.is_file() or not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ConfigError(
            f"teacher.pretrained={folder} is not a timm folder (config.json and model.safetensors or "
            "pytorch_model.bin); write one with timm.models.save_for_hf(model, FOLDER)"
        )
    try:
        return json.loads(config.read_text())["architecture"]
    except (ValueError, KeyError):
        raise ConfigError(
            f"teacher.pretrained={folder}: config.json names no architecture; write the folder with "
            "timm.models.save_for_hf(model, FOLDER)"
        ) from None


def cached(timm, name: str) -> bool:
    """Whether the hub weights of `name` are already in HF_HOME (checked without the network)."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id if timm.models.get_pretrained_cfg(name) else None
    return bool(hub_id) and any(
        isinstance(try_to_load_from_cache(hub_id, f), str) for f in ("model.safetensors", "pytorch_model.bin")
    )


def missing(name: str, download: bool, error: Exception | None = None) -> ConfigError:
    from huggingface_hub import constants

    how = "downloads are off (data.download=false)" if not download else "it could not be downloaded"
    why = f" ({type(error).__name__})" if error else ""
    return ConfigError(
        f"teacher.pretrained=timm:{name}: its weights are not in the Hugging Face cache ({constants.HF_HOME}) "
        f"and {how}{why}; fetch them where the network allows with timm.create_model({name!r}, pretrained=True) "
        "(HF_HOME names the cache), or give a folder written by timm.models.save_for_hf"
    )


def timm_pretrained(teacher: TeacherConfig, num_classes: int, download: bool) -> tuple[nn.Module, Preprocessing, str]:
    """(the model with its weights and a new head, the preprocessing of its weights, its timm architecture)."""
    timm = timm_module()
    name = timm_name(teacher.pretrained)
    folder = Path(name).expanduser()
    if folder.is_dir():
        arch, source = folder_architecture(folder), f"local-dir:{folder}"
    else:
        arch, source = name, name
        if not download and not cached(timm, name):
            raise missing(name, download)
    try:
        model = timm.create_model(source, pretrained=True)
    except (OSError, RuntimeError, ValueError) as e:  # no network, a wrong file, a mismatched state dict
        if folder.is_dir():
            raise ConfigError(
                f"teacher.pretrained={teacher.pretrained}: the weights do not load into {arch} "
                f"({type(e).__name__}); write the folder with timm.models.save_for_hf(model, FOLDER)"
            ) from None
        raise missing(name, download, e) from None
    data = timm.data.resolve_data_config({}, model=model)
    crop = int(data["input_size"][-1])
    pre = Preprocessing(math.floor(crop / data.get("crop_pct", 1.0)), crop, tuple(data["mean"]), tuple(data["std"]))
    model.reset_classifier(num_classes)  # the new head, for the data's classes
    return model, pre, arch
