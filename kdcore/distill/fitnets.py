"""Romero et al. (2015), "FitNets: Hints for Thin Deep Nets": regress the teacher's hint layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from kdcore.distill.connectors import align, connector
from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


@dataclass(frozen=True)
class FitNetsOptions:
    """FitNets hints (Romero et al. 2015)."""

    weight: float = tuned(100.0, 1.0, 1000.0, "Weight of the hint (feature regression) loss.", ge=0, le=1e6)


@register_distiller("fitnets")
class FitNets(FeatureDistiller):
    """CE + weight * MSE(regressor(student guided layer), teacher hint layer), on the deepest stage pair."""

    Options = FitNetsOptions

    def __init__(self, weight: float = FitNetsOptions.weight, layers: LayerChoice | None = None):
        super().__init__(layers)
        self.weight = weight

    def build(self, student: Features, teacher: Features, train) -> None:
        s, t = align(student.stages[-1], teacher.stages[-1])
        self.regressor = connector(s.shape[1], t.shape[1], spatial=s.dim() == 4)

    def feature_terms(self, student: Features, teacher: Features, batch):
        s, t = align(student.stages[-1], teacher.stages[-1])
        return {"hint": self.weight * F.mse_loss(self.regressor(s), t)}
