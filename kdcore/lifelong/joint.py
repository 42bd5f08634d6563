"""Joint training: each task trains on every task's data seen so far, the upper bound of the others."""

from __future__ import annotations

import torch

from kdcore.data.bundle import Split
from kdcore.lifelong.base import Strategy
from kdcore.lifelong.registry import register_strategy


@register_strategy("joint")
class Joint(Strategy):
    name = "joint"

    def __init__(self, options=None, seed: int = 0):
        super().__init__(options, seed)
        self.seen: Split | None = None

    def before_task(self, model, train, settings):
        train = train.to("cpu")
        self.seen = (
            train if self.seen is None else Split(torch.cat([self.seen.x, train.x]), torch.cat([self.seen.y, train.y]))
        )
        return self.seen

    def state_dict(self):
        state = super().state_dict()
        if self.seen is not None:
            state["seen"] = {"x": self.seen.x, "y": self.seen.y}
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.seen = Split(state["seen"]["x"], state["seen"]["y"]) if "seen" in state else None
