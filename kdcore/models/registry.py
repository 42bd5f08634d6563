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
    depths: range | None = None  # the `depth`s the model can have when not every one (ResNets: 6n+2)


def register_model(name: str, description: str = "", modality: str = "image", depths: range | None = None):
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        ABOUT[name] = ModelAbout(modality, description, depths)
        return factory

    return add


def depths_within(name: str, low: int, high: int) -> range:
    """The depths `name` can have from `low` to `high`, as a range with its step (empty if none)."""
    rule = ABOUT[name].depths
    if rule is None:
        return range(low, high + 1)
    ok = [d for d in rule if low <= d <= high]
    return range(ok[0], ok[-1] + 1, rule.step) if ok else range(0)


def depth_rule(name: str) -> str:
    """`6n+2: 8, 14, 20, ...`: the depths `name` can have, in words; "" when it can have any."""
    rule = ABOUT[name].depths
    if rule is None:
        return ""
    return f"{rule.step}n+{rule.start % rule.step}: {', '.join(map(str, rule[:3]))}, ..."


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


def model_from_checkpoint(blob: dict) -> nn.Module:
    """The model a kdflow checkpoint (`{"spec": ..., "state_dict": ...}`) holds, its weights loaded, in eval mode."""
    spec = blob["spec"]
    model = build_model(spec["arch"], tuple(spec["input_shape"]), spec["num_classes"], **spec["options"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
