"""Which modules of a model feature methods read: a rule, so a new model needs no change to any method.

Feature-map stages (shallow to deep), first match wins:
  1. the model's own `distill_stages` attribute (a list of module names);
  2. modules named layer1..layer4, block1..block4 or stage1..stage4 (ResNets, WRNs), in order;
  3. a module named `features` (plain CNNs, VGG, torchvision MobileNetV2).
Embedding: the input of the model's last nn.Linear (the penultimate feature the classifier reads).
`distill.layers` in the config overrides either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

CONVENTIONAL_STAGES = [f"{prefix}{i}" for prefix in ("layer", "block", "stage") for i in range(1, 5)]


@dataclass(frozen=True)
class LayerChoice:
    """Module names chosen by the user; empty means: resolve by the rule above."""

    teacher: list[str] = field(default_factory=list)
    student: list[str] = field(default_factory=list)
    teacher_embedding: str | None = None
    student_embedding: str | None = None


def default_stages(model: nn.Module) -> list[str]:
    declared = getattr(model, "distill_stages", None)
    if declared:
        return list(declared)
    names = dict(model.named_modules())
    for prefix in ("layer", "block", "stage"):
        found = [f"{prefix}{i}" for i in range(1, 5) if f"{prefix}{i}" in names]
        if found:
            return found
    return ["features"] if "features" in names else []


def default_embedding(model: nn.Module) -> str | None:
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def stages_of(model: nn.Module, chosen: list[str], role: str) -> list[str]:
    stages = list(chosen) or default_stages(model)
    if not stages:
        raise ValueError(
            f"cannot tell which modules of the {role} ({type(model).__name__}) give feature maps; "
            f"set distill.layers.{role} to module names, shallow to deep"
        )
    return stages


def embedding_of(model: nn.Module, chosen: str | None, role: str) -> str:
    name = chosen or default_embedding(model)
    if name is None:
        raise ValueError(f"the {role} has no nn.Linear classifier; set distill.layers.{role}_embedding to a module name")
    return name
