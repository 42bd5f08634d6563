"""Learn one task with a strategy: plain SGD over mini-batches, each one `strategy.observe()` step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.evaluate import predict_logits
from kdcore.lifelong.base import Strategy


@dataclass(frozen=True)
class LearnSettings:
    epochs: int = 1
    batch_size: int = 10
    lr: float = 0.03
    seed: int = 0
    kd_weight: float = 1.0  # weight of the distillation term when a teacher guides the model
    temperature: float = 2.0
    optimizer: str = "sgd"  # "sgd" (plain, as in DER, unless `momentum`) | "adam" (AdamW, as kdcore.train.fit)
    momentum: float = 0.0
    weight_decay: float = 0.0
    device: str = "cpu"


def make_task_optimizer(model: nn.Module, s: LearnSettings) -> torch.optim.Optimizer:
    if s.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=s.momentum > 0
        )
    raise ValueError(f"unknown optimizer {s.optimizer!r}; choose 'adam' or 'sgd'")


def learn_task(
    model: nn.Module, strategy: Strategy, train: Split, settings: LearnSettings, teacher: nn.Module | None = None
) -> dict[str, float]:
    """Train `model` on one task; with `teacher`, also distil its outputs. Returns mean loss terms."""
    model.to(settings.device)
    if teacher is not None:
        teacher.to(settings.device)
    data = strategy.begin_task(model, train).to(settings.device)
    teacher_logits = None if teacher is None else predict_logits(teacher, data.x).to(settings.device)
    optimizer = make_task_optimizer(model, settings)  # a fresh optimizer per task, as in DER
    generator = torch.Generator().manual_seed(settings.seed + strategy.tasks_seen)
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), settings.batch_size):
            index = order[start : start + settings.batch_size]
            terms = strategy.observe(
                model,
                optimizer,
                data.x[index],
                data.y[index],
                None if teacher_logits is None else teacher_logits[index],
                settings.kd_weight,
                settings.temperature,
            )
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
    strategy.end_task(model)
    model.eval()
    return {k: v / max(steps, 1) for k, v in sums.items()}
