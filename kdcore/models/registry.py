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
    """Build `name` for inputs of `input_shape` (C, H, W) and `num_classes` outputs.

    `input_adapter` (an InputAdapter's state dict, pretrained teachers): the network is built for the input its
    weights expect and takes the data's `input_shape` through the adapter.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    adapter_state = options.pop("input_adapter", None)
    if adapter_state is None:
        return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes, **options)
    from kdcore.models.input_adapter import InputAdapter, adapt_input

    adapter = InputAdapter.from_state_dict(adapter_state)
    return adapt_input(MODELS[name](input_shape=adapter.input_shape, num_classes=num_classes, **options), adapter)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
