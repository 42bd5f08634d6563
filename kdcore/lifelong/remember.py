"""A fresh strategy for a model that has already learned data (a distilled champion): its memory starts from it."""

from __future__ import annotations

import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.evaluate import predict_logits
from kdcore.lifelong.base import Strategy
from kdcore.lifelong.derpp import DERpp
from kdcore.lifelong.head import last_linear
from kdcore.lifelong.joint import Joint
from kdcore.lifelong.lwf import LwF


def remember(strategy: Strategy, model: nn.Module, learned: Split) -> Strategy:
    """Count `learned` as the first task: LwF then keeps the model's old outputs, DER++ seeds its buffer with
    a reservoir sample of `learned` and the model's logits on it, joint trains on it again with each new batch."""
    learned = learned.to("cpu")
    if isinstance(strategy, DERpp):
        strategy.buffer.add(learned.x, learned.y, predict_logits(model, learned.x).cpu())
    if isinstance(strategy, LwF):
        strategy.learned_width = last_linear(model)[2].out_features
    if isinstance(strategy, Joint):
        strategy.seen = learned
    strategy.tasks_seen = max(strategy.tasks_seen, 1)
    return strategy
