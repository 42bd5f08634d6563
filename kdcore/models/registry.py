"""Models by name, so a config can say `teacher.arch: cnn_medium` and never import a class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
ABOUT: dict[str, ModelAbout] = {}  # what `kdflow list models` says of each


@dataclass(frozen=True)
class ModelAbout:
    modality: str  # "image": (C, H, W) float inputs; "text": token ids
    description: str


def register_model(name: str, description: str = "", modality: str = "image"):
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        ABOUT[name] = ModelAbout(modality, description)
        return factory

    return add


def models_of(modality: str) -> tuple[str, ...]:
    return tuple(sorted(name for name, about in ABOUT.items() if about.modality == modality))


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    """Build `name` for inputs of `input_shape` (C, H, W) and `num_classes` outputs."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
