"""A retraining's strategy options from its config section, and one task learned through fit."""

from __future__ import annotations

import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.distill.base import LabelsOnly
from kdcore.distill.kd import KD
from kdcore.lifelong.base import Strategy
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit
from pipelines.config.schema import RetrainSection


def strategy_options(settings: RetrainSection, temperature: float) -> dict:
    """The options of `settings.strategy` from its section retrain.<strategy>; an LwF temperature left empty is the
    model's own distillation temperature."""
    section = getattr(settings, settings.strategy, None)
    options = section.model_dump() if section is not None else {}
    if "temperature" in options and options["temperature"] is None:
        options["temperature"] = temperature
    return options


def learn_task(
    model: nn.Module,
    strategy: Strategy,
    train: Split,
    settings: TrainSettings,
    teacher: nn.Module | None = None,
    temperature: float = 2.0,
    kd_weight: float = 1.0,
) -> dict[str, float]:
    """Train `model` on one batch of the stream; with `teacher`, CE and KD towards it (KD weighing `kd_weight`
    times CE) beside the strategy's own terms. Returns the epoch-mean loss terms of the last epoch."""
    if teacher is None:
        history = fit(model, train, None, settings, LabelsOnly(), strategy=strategy)
    else:
        soft = SoftTargets(teacher=teacher.eval())
        history = fit(
            model,
            train,
            None,
            settings,
            KD(temperature, alpha=kd_weight / (1 + kd_weight)),
            soft_targets=soft,
            strategy=strategy,
        )
    model.eval()
    return {k.removeprefix("train/"): v for k, v in history[-1].items()}
