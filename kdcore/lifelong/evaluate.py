"""One row of the accuracy matrix: the model's accuracy on each task's held-out test part."""

from __future__ import annotations

import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.evaluate import predict_logits


def accuracy_row(model: nn.Module, tests: list[Split]) -> list[float]:
    """Accuracy only (no loss): a model whose head predates a class simply never predicts it."""
    return [float((predict_logits(model, t.x).argmax(1) == t.y.cpu()).float().mean()) for t in tests]
