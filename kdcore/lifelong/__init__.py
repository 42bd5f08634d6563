"""Lifelong (continual) learning: strategies that learn new data without forgetting the old, and their metrics."""

from kdcore.lifelong.base import Strategy
from kdcore.lifelong.buffer import ReservoirBuffer
from kdcore.lifelong.evaluate import accuracy_row
from kdcore.lifelong.head import grow_head
from kdcore.lifelong.metrics import average_accuracy, backward_transfer, forgetting, summarise
from kdcore.lifelong.registry import STRATEGIES, build_strategy
from kdcore.plugins import import_modules

import_modules(__name__, __path__)  # each strategy file registers itself: a new file here is a new strategy

__all__ = [
    "ReservoirBuffer",
    "accuracy_row",
    "STRATEGIES",
    "Strategy",
    "average_accuracy",
    "backward_transfer",
    "build_strategy",
    "forgetting",
    "grow_head",
    "summarise",
]
