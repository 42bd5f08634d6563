"""One row of the accuracy matrix: the model's accuracy on each task's held-out test part."""
from __future__ import annotations

import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.evaluate import evaluate


def accuracy_row(model: nn.Module, tests: list[Split]) -> list[float]:
    return [evaluate(model, test)["acc"] for test in tests]
