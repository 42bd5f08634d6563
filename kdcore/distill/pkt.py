"""Passalis & Tefas (2018), "Learning Deep Representations with Probabilistic Knowledge Transfer" (ECCV)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


def conditional_probabilities(e: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """P(j | i) from cosine similarity mapped to [0, 1] and normalised per row."""
    e = e / (e.norm(dim=1, keepdim=True) + eps)
    kernel = (e @ e.T + 1) / 2
    return kernel / kernel.sum(1, keepdim=True)


def pkt_loss(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """KL(P_teacher || P_student), averaged over all b^2 entries (as in the authors' code)."""
    ps, pt = conditional_probabilities(student.flatten(1)), conditional_probabilities(teacher.detach().flatten(1))
    return (pt * torch.log((pt + eps) / (ps + eps))).mean()


@dataclass(frozen=True)
class PKTOptions:
    """Probabilistic knowledge transfer (Passalis & Tefas 2018)."""

    weight: float = tuned(
        30000.0, 300.0, 300000.0, "Weight of the probabilistic knowledge transfer loss.", ge=0, le=1e8
    )


@register_distiller("pkt")
class PKT(FeatureDistiller):
    """CE + weight * PKT loss on the penultimate embeddings."""

    Options = PKTOptions

    def __init__(self, weight: float = PKTOptions.weight, layers: LayerChoice | None = None):
        super().__init__(layers)
        self.weight = weight

    def feature_terms(self, student: Features, teacher: Features, batch):
        return {"pkt": self.weight * pkt_loss(student.embedding, teacher.embedding)}
