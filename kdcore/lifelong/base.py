"""The strategy contract: one `observe()` step per mini-batch, plus hooks around each task (batch of the stream)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.kd import kd_loss


class Strategy:
    """A continual-learning method. Subclasses add loss terms and keep whatever memory they need.

    `observe` minimises CE on the new data, plus `kd_weight * kd_loss` towards a teacher's logits when
    the caller distils a student, plus the method's own anti-forgetting terms (`extra_terms`).
    """

    name = "base"

    def __init__(self, seed: int = 0, **_):  # options meant for other strategies are ignored (one config for all)
        self.seed, self.tasks_seen = seed, 0

    def begin_task(self, model: nn.Module, train: Split) -> Split:
        """Called before learning a task; returns the data to train on (the task's own, by default)."""
        return train

    def extra_terms(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {}

    def after_step(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> None:
        pass

    def end_task(self, model: nn.Module) -> None:
        self.tasks_seen += 1

    def observe(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        kd_weight: float = 1.0,
        temperature: float = 2.0,
    ) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        terms: dict[str, torch.Tensor] = {"ce": F.cross_entropy(logits, y)}
        if teacher_logits is not None:
            terms["kd"] = kd_weight * kd_loss(logits, teacher_logits, temperature)
        terms.update(self.extra_terms(model, x, y, logits))
        loss = sum(terms.values())
        loss.backward()
        optimizer.step()
        self.after_step(x, y, logits.detach())
        return {k: float(v.detach()) for k, v in terms.items()}

    def state_dict(self) -> dict:
        """Tensors and primitives only (loads with weights_only=True)."""
        return {"name": self.name, "tasks_seen": self.tasks_seen}

    def load_state_dict(self, state: dict) -> None:
        self.tasks_seen = state["tasks_seen"]
