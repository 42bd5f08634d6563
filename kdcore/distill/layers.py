"""Which modules of a model feature methods read: a rule, so a new model needs no change to any method.

Feature-map stages (shallow to deep), first match wins:
  1. the model's own `distill_stages` attribute (a list of module names);
  2. modules named layer1..layer4, block1..block4 or stage1..stage4 (ResNets, WRNs), in order;
  3. a flat container named `stages` or `features` (CIFAR ResNets/WRNs, MobileNetV2, VGG): of its
     children, the last one at each spatial resolution, found by one probe forward pass.
Embedding: the input of the model's last nn.Linear (the penultimate feature the classifier reads).
`distill.layers` in the config overrides either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass(frozen=True)
class LayerChoice:
    """Module names chosen by the user; empty means: resolve by the rule above."""

    teacher: list[str] = field(default_factory=list)
    student: list[str] = field(default_factory=list)
    teacher_embedding: str | None = None
    student_embedding: str | None = None


def default_stages(model: nn.Module, sample: torch.Tensor | None = None) -> list[str]:
    declared = getattr(model, "distill_stages", None)
    if declared:
        return list(declared)
    names = dict(model.named_modules())
    for prefix in ("layer", "block", "stage"):
        found = [f"{prefix}{i}" for i in range(1, 5) if f"{prefix}{i}" in names]
        if found:
            return found
    for container in ("stages", "features"):
        if container in names and sample is not None:
            return resolution_ends(model, container, sample)
    return []


@torch.no_grad()
def resolution_ends(model: nn.Module, container: str, sample: torch.Tensor) -> list[str]:
    """Children of `container` whose output is the last at its spatial size (the end of each stage)."""
    children = list(model.get_submodule(container).named_children())
    sizes: dict[str, tuple[int, ...]] = {}
    handles = [
        m.register_forward_hook(lambda mod, args, out, n=n: sizes.__setitem__(n, tuple(out.shape[2:])))
        for n, m in children
    ]
    was_training = model.training
    try:
        model.eval()
        model(sample)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    ran = [n for n, _ in children if n in sizes]
    return [f"{container}.{n}" for i, n in enumerate(ran) if i + 1 == len(ran) or sizes[ran[i + 1]] != sizes[n]]


def default_embedding(model: nn.Module) -> str | None:
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def stages_of(model: nn.Module, chosen: list[str], role: str, sample: torch.Tensor | None = None) -> list[str]:
    stages = list(chosen) or default_stages(model, sample)
    if not stages:
        raise ValueError(
            f"cannot tell which modules of the {role} ({type(model).__name__}) give feature maps; "
            f"set distill.layers.{role} to module names, shallow to deep"
        )
    return stages


def embedding_of(model: nn.Module, chosen: str | None, role: str) -> str:
    name = chosen or default_embedding(model)
    if name is None:
        raise ValueError(
            f"the {role} has no nn.Linear classifier; set distill.layers.{role}_embedding to a module name"
        )
    return name
