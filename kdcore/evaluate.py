"""Predictions and accuracy on a split, in eval mode and without gradients."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Logits of `model` on `x`, batch by batch, on the model's device; returned on the CPU.

    `transform` turns stored values into model inputs on the device (e.g. `InputView.normalise` for uint8 images).
    """
    transform = transform or (lambda batch: batch)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(transform(x[i : i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def evaluate(
    model: nn.Module, split: Split, batch_size: int = 1024, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict[str, float]:
    logits = predict_logits(model, split.x, batch_size, transform)
    y = split.y.cpu()
    return {
        "loss": float(F.cross_entropy(logits, y)),
        "acc": float((logits.argmax(1) == y).float().mean()),
    }
