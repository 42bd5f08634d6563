"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's outputs on the new data."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from kdcore.distill.kd import kd_loss
from kdcore.forward_mode import ForwardMode
from kdcore.lifelong.base import Strategy
from kdcore.lifelong.head import last_linear
from kdcore.lifelong.registry import register_strategy
from kdcore.options import option

DEFAULT_TEMPERATURE = 2.0


@dataclass(frozen=True)
class LwFOptions:
    """Learning without Forgetting (Li & Hoiem 2016): distils the previous model's outputs on the new data."""

    kd_weight: float = option(
        0.2,  # kdflow's retraining default since its first version (retrain.alpha); the paper's benchmarks use 1
        "Weight of T^2 * KL(previous model's softened outputs || the model's) beside the loop's loss (paper: 1).",
        ge=0,
        le=100,
    )
    temperature: float | None = option(
        None,
        f"Temperature T of that KL; empty: the model's own distillation temperature when a pipeline retrains it, "
        f"else {DEFAULT_TEMPERATURE}.",
        gt=0,
        le=100,
    )


def lwf_term(logits: torch.Tensor, previous_logits: torch.Tensor, o: LwFOptions) -> torch.Tensor:
    """kd_weight * T^2 * KL over the outputs the previous model had (the head may have grown since)."""
    width = previous_logits.shape[1]
    t = DEFAULT_TEMPERATURE if o.temperature is None else o.temperature
    return o.kd_weight * kd_loss(logits[:, :width], previous_logits, t)


@register_strategy("lwf")
class LwF(Strategy):
    name = "lwf"
    Options = LwFOptions

    def __init__(self, options=None, seed: int = 0):
        super().__init__(options, seed)
        self.previous = None
        self.learned_width: int | None = None  # the head's width when the last task ended: its classes are learned

    def before_task(self, model, train, settings):
        # The model as it was before this task; nothing to keep on the very first task. Its head may have grown
        # since the last task: only the learned classes' outputs are distilled (new rows are untrained).
        self.previous = copy.deepcopy(model).eval().requires_grad_(False) if self.tasks_seen else None
        return train

    def loss_terms(self, model, logits, batch):
        if self.previous is None:
            return {}
        with torch.no_grad(), ForwardMode(batch.autocast).context(batch.x.device):
            old = self.previous(batch.x)
        return {"lwf": lwf_term(logits, old[:, : self.learned_width].float(), self.options)}

    def after_task(self, model):
        super().after_task(model)
        self.learned_width = last_linear(model)[2].out_features
        self.previous = None  # a whole model's copy is not kept between tasks

    def state_dict(self):
        return {**super().state_dict(), "learned_width": self.learned_width}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.learned_width = state.get("learned_width")
