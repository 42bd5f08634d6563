"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's outputs on the new data."""

from __future__ import annotations

import copy

import torch

from kdcore.distill.kd import kd_loss
from kdcore.lifelong.base import Strategy
from kdcore.lifelong.registry import register_strategy


@register_strategy("lwf")
class LwF(Strategy):
    name = "lwf"

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0, seed: int = 0, **_):
        super().__init__(seed)
        self.alpha, self.temperature = alpha, temperature
        self.previous = None

    def begin_task(self, model, train):
        # The model as it was before this task; nothing to keep on the very first task.
        self.previous = copy.deepcopy(model).eval() if self.tasks_seen else None
        return train

    def extra_terms(self, model, x, y, logits):
        if self.previous is None:
            return {}
        with torch.no_grad():
            old = self.previous(x)
        width = old.shape[1]  # only the outputs the previous model had (the head may have grown)
        return {"lwf": self.alpha * kd_loss(logits[:, :width], old, self.temperature)}
