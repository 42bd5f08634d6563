"""Plain fine-tuning on each new task: the forgetting baseline every method must beat."""

from __future__ import annotations

from kdcore.lifelong.base import Strategy
from kdcore.lifelong.registry import register_strategy


@register_strategy("finetune")
class FineTune(Strategy):
    name = "finetune"
