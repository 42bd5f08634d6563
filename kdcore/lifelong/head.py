"""Class-incremental head growth: a wider last Linear layer whose old rows are the old classifier."""

from __future__ import annotations

import torch
import torch.nn as nn


def last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = name, module
    if found is None:
        raise ValueError(f"{type(model).__name__} has no Linear layer to use as a classifier head")
    name, linear = found
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    return parent, name.rpartition(".")[2], linear


def grow_head(model: nn.Module, num_classes: int, seed: int = 0) -> bool:
    """Widen the classifier to `num_classes` outputs keeping the old ones; False if already that wide."""
    parent, attr, old = last_linear(model)
    if num_classes < old.out_features:
        raise ValueError(f"cannot shrink the head from {old.out_features} to {num_classes} classes")
    if num_classes == old.out_features:
        return False
    torch.manual_seed(seed)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device)
    with torch.no_grad():
        new.weight[: old.out_features] = old.weight
        if old.bias is not None:
            new.bias[: old.out_features] = old.bias
    setattr(parent, attr, new)
    return True
