"""Zagoruyko & Komodakis (2017), "Paying More Attention to Attention" (attention transfer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.connectors import align
from kdcore.distill.features import FeatureDistiller, Features, stage_pairs
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import option, tuned


def attention_map(feature: torch.Tensor, p: float) -> torch.Tensor:
    """Spatial attention: the channel mean of |A|^p, flattened and L2-normalised per sample."""
    return F.normalize(feature.abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(pairs: list[tuple[torch.Tensor, torch.Tensor]], p: float) -> torch.Tensor:
    """Sum over stage pairs of the mean squared difference of the two attention maps."""
    total = 0
    for s, t in pairs:
        s, t = align(s, t)  # the larger map is pooled to the smaller's size
        total = total + (attention_map(s, p) - attention_map(t.detach(), p)).pow(2).mean()
    return total


@dataclass(frozen=True)
class ATOptions:
    """Attention transfer (Zagoruyko & Komodakis 2017)."""

    weight: float = tuned(1000.0, 10.0, 10000.0, "Weight of the attention-transfer loss.", ge=0, le=1e6)
    p: float = option(2.0, "Exponent of the attention map (sum of |activation|^p over channels).", gt=0, le=8)


@register_distiller("at")
class AT(FeatureDistiller):
    """CE + weight * attention-transfer loss over every student stage and its teacher partner."""

    Options = ATOptions

    def __init__(self, weight: float = ATOptions.weight, p: float = ATOptions.p, layers: LayerChoice | None = None):
        super().__init__(layers)
        self.weight, self.p = weight, p

    def build(self, student: Features, teacher: Features, train) -> None:
        for role, feats in (("student", student), ("teacher", teacher)):
            flat = [tuple(f.shape[1:]) for f in feats.stages if f.dim() != 4]
            if flat:
                raise ValueError(
                    f"AT needs convolutional feature maps, but a {role} stage gives shape {flat[0]}; "
                    "choose CNN teacher and student, or another method"
                )

    def feature_terms(self, student: Features, teacher: Features, batch):
        return {"at": self.weight * at_loss(stage_pairs(student.stages, teacher.stages), self.p)}
