"""Predictions and accuracy on a split, in eval mode and without gradients."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.forward_mode import ForwardMode


@torch.no_grad()
def device_logits(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 1024,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mode: ForwardMode | None = None,
) -> torch.Tensor:
    """Float32 logits of `model` on `x`, batch by batch, left on the model's device (no sync per batch).

    `transform` turns stored values into model inputs on the device (e.g. `InputView.normalise` for uint8 images);
    `mode` runs the forward passes under autocast / channels-last (default: float32).
    """
    transform = transform or (lambda batch: batch)
    mode = mode or ForwardMode()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with mode.context(device):
        out = [
            model(mode.inputs(transform(x[i : i + batch_size].to(device)))).float()
            for i in range(0, len(x), batch_size)
        ]
    model.train(was_training)
    return torch.cat(out)


def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 1024,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mode: ForwardMode | None = None,
) -> torch.Tensor:
    """Float32 logits of `model` on `x`, computed on the model's device; returned on the CPU."""
    return device_logits(model, x, batch_size, transform, mode).cpu()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int = 1024,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mode: ForwardMode | None = None,
) -> dict[str, float]:
    logits = device_logits(model, split.x, batch_size, transform, mode)
    y = split.y.to(logits.device)
    loss, acc = torch.stack([F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()]).tolist()  # one sync
    return {"loss": loss, "acc": acc}
