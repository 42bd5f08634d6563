"""teacher.pretrained: the weights found (downloaded if allowed) and checked before any work, then loaded.

The config validator has checked the name and the family; here the file must be at hand and fit the
architecture. The teacher is built for the input its weights expect and reads the data through an
InputAdapter (kdcore/models/input_adapter.py); its head is new, for the data's classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch.nn as nn

from kdcore.data import DataBundle
from kdcore.models import build_model
from kdcore.models.input_adapter import InputAdapter, adapt_input
from kdcore.models.pretrained import (
    IMAGENET_DEFAULT,
    Preprocessing,
    fetch_named,
    is_path,
    load_backbone,
    named_weights,
    preprocessing_of,
    read_state_dict,
)
from pipelines.config.schema import ConfigError, PipelineConfig, TeacherConfig

log = logging.getLogger("kdflow")


def pretrained_weights(teacher: TeacherConfig, download: bool) -> tuple[dict, Preprocessing, str]:
    """(state dict, the preprocessing it was trained with, where it came from); ConfigError in one sentence."""
    source = teacher.pretrained
    try:
        if is_path(source):
            state, pre, origin = read_state_dict(source), IMAGENET_DEFAULT, source
            log.info(
                "teacher: %s carries no preprocessing; assuming ImageNet's (resize 256, crop 224, mean/std)", source
            )
        else:
            weights = named_weights(teacher.arch, source)
            file = fetch_named(weights, download, switch="downloads are off (data.download=false)")
            state, pre, origin = read_state_dict(file), preprocessing_of(weights), f"{weights} ({file})"
    except ValueError as e:
        raise ConfigError(f"teacher.pretrained={source}: {e}") from None
    if teacher.image_size:
        pre = pre.at(teacher.image_size)
    return state, pre, origin


def timm_weights(teacher: TeacherConfig, num_classes: int, download: bool) -> tuple[nn.Module, Preprocessing, str]:
    from pipelines.teachers.timm_teacher import timm_pretrained

    model, pre, arch = timm_pretrained(teacher, num_classes, download)
    return model, pre.at(teacher.image_size) if teacher.image_size else pre, arch


def check_pretrained(cfg: PipelineConfig) -> str | None:
    """Before any work: the weights are at hand and fit teacher.arch (a line for --dry-run), or None if unused."""
    teacher = cfg.teacher
    if not teacher.pretrained:
        return None
    if teacher.arch == "hf":
        from pipelines.teachers.hf_teacher import check_hf_teacher

        return check_hf_teacher(cfg)
    if teacher.arch == "timm":
        _, pre, arch = timm_weights(teacher, 2, cfg.data.download)
        return f"teacher: timm {arch} from {teacher.pretrained}, sees {pre.crop} px (resize {pre.resize}, centre crop)"
    state, pre, origin = pretrained_weights(teacher, cfg.data.download)
    model = build_model(teacher.arch, (3, pre.crop, pre.crop), 2, **teacher.options())
    fit_weights(model, state, teacher)
    return f"teacher: {teacher.arch} from {origin}, sees {pre.crop} px (resize {pre.resize}, centre crop)"


def fit_weights(model: nn.Module, state: dict, teacher: TeacherConfig) -> None:
    try:
        load_backbone(model, state, teacher.pretrained, teacher.arch)
    except ValueError as e:
        raise ConfigError(f"teacher.pretrained={teacher.pretrained}: {e}") from None


def pretrained_teacher(teacher: TeacherConfig, bundle: DataBundle, download: bool) -> tuple[nn.Module, dict]:
    """The teacher to fine-tune, and the build options its checkpoint records (the adapter among them)."""
    view = bundle.view
    if teacher.arch == "timm":  # timm loads its own weights and resets its own head
        model, pre, arch = timm_weights(teacher, bundle.num_classes, download)
        adapter = InputAdapter(tuple(view.mean), tuple(view.std), pre.resize, pre.crop, tuple(pre.mean), tuple(pre.std))
        log.info("teacher: timm %s from %s, new head for %d classes", arch, teacher.pretrained, bundle.num_classes)
        return adapt_input(model, adapter), {"timm_arch": arch, "input_adapter": adapter.state_dict()}
    state, pre, origin = pretrained_weights(teacher, download)
    adapter = InputAdapter(tuple(view.mean), tuple(view.std), pre.resize, pre.crop, tuple(pre.mean), tuple(pre.std))
    options = {**teacher.options(), "input_adapter": adapter.state_dict()}
    model = build_model(teacher.arch, bundle.input_shape, bundle.num_classes, **options)
    fit_weights(model, state, teacher)
    log.info("teacher: %s starts from %s, new head for %d classes", teacher.arch, origin, bundle.num_classes)
    return model, options


def pretrained_stamp(teacher: TeacherConfig) -> str | None:
    """A local weights file's (or Hugging Face folder's files') size and modification time: replacing them
    retrains the teacher."""
    if not teacher.pretrained or not is_path(teacher.pretrained):
        return None
    path = Path(teacher.pretrained)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        return None
    return ";".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
