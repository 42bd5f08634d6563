"""Any timm model by its timm name, as a kdflow image model (teacher.arch=timm with teacher.pretrained).

Rebuilt untrained from the name its checkpoint records (`timm_arch`), then given the checkpoint's weights,
like every kdflow model. timm is imported only when one is built: it is an optional package (`pip install timm`).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch.nn as nn

from kdcore.models.registry import register_model


@register_model("timm", "a timm model by name (teacher.pretrained: timm:<name> or a folder written by save_for_hf)")
def timm_model(input_shape, num_classes: int, timm_arch: str = "resnet18") -> nn.Module:
    import timm

    return timm.create_model(timm_arch, pretrained=False, num_classes=num_classes, in_chans=input_shape[0])


def timm_name(source: str) -> str:
    return source.removeprefix("timm:")


def check_timm_source(source: str) -> None:
    """Config time: a folder, or a name timm knows (with close names when not)."""
    name = timm_name(source)
    if Path(name).expanduser().is_dir():
        return
    try:
        import timm
    except ImportError:
        raise ValueError("teacher.arch=timm needs the timm package; install it with pip install timm") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ValueError(f"unknown timm model {name!r}{hint}; see timm.list_models() or give a save_for_hf folder")
