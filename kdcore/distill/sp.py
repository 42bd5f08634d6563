"""Tung & Mori (2019), "Similarity-Preserving Knowledge Distillation" (ICCV)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


def similarity(feature: torch.Tensor) -> torch.Tensor:
    """The batch's row-normalised Gram matrix: how alike each pair of samples looks to this layer."""
    flat = feature.flatten(1)
    return F.normalize(flat @ flat.T, dim=1)


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """||G_t - G_s||_F^2 / b^2; shapes may differ, only the batch size must match."""
    b = student.shape[0]
    return (similarity(teacher.detach()) - similarity(student)).pow(2).sum() / (b * b)


@dataclass(frozen=True)
class SPOptions:
    """Similarity-preserving KD (Tung & Mori 2019)."""

    weight: float = tuned(3000.0, 30.0, 30000.0, "Weight of the similarity-preserving loss.", ge=0, le=1e7)


@register_distiller("sp")
class SP(FeatureDistiller):
    """CE + weight * similarity-preserving loss on the deepest stage pair."""

    Options = SPOptions

    def __init__(self, weight: float = SPOptions.weight, layers: LayerChoice | None = None):
        super().__init__(layers)
        self.weight = weight

    def feature_terms(self, student: Features, teacher: Features, batch):
        return {"sp": self.weight * sp_loss(student.stages[-1], teacher.stages[-1])}
