"""The strategy contract: a plug-in of `kdcore.train.fit`, with hooks named for when the loop calls them.

One `fit` call learns one task. Before it, `before_task` may change the data to train on (joint) and keep what
the method needs (LwF's previous model, DER++'s replay plan); on each batch, `loss_terms` adds the method's
anti-forgetting terms to the distiller's; after each optimiser step, `after_step` sees the batch and the logits
the model gave it (DER++ stores them); after the task, `after_task`. Nothing here reads a tensor on the host.
"""

from __future__ import annotations

from dataclasses import fields

import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.distill.base import Batch
from kdcore.options import NoOptions


class Strategy:
    """A continual-learning method: its options (a dataclass), its memory, and its loss terms."""

    name = "base"
    Options: type = NoOptions

    def __init__(self, options=None, seed: int = 0):
        self.options = options if options is not None else self.Options()
        self.seed, self.tasks_seen = seed, 0

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls.Options)]

    def before_task(self, model: nn.Module, train: Split, settings) -> Split:
        """Called by `fit` before the task's first step (model on its device); returns the data to train on."""
        return train

    def loss_terms(self, model: nn.Module, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """The method's terms on this batch (float32 `logits`, with gradient); the same names on every step."""
        return {}

    def after_step(self, batch: Batch, logits: torch.Tensor) -> None:
        """Called after each optimiser step with the batch and the (detached) logits it was trained on."""

    def after_task(self, model: nn.Module) -> None:
        self.tasks_seen += 1

    def state_dict(self) -> dict:
        """Tensors and primitives only (loads with weights_only=True)."""
        return {"name": self.name, "tasks_seen": self.tasks_seen}

    def load_state_dict(self, state: dict) -> None:
        self.tasks_seen = state["tasks_seen"]
