"""Park et al. (2019), "Relational Knowledge Distillation" (CVPR): distance- and angle-wise losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between rows; the clamp keeps the gradient finite at zero distance."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def mean_distance(d: torch.Tensor) -> torch.Tensor:
    """Mean of the off-diagonal entries (every pair's distance, each > 0 by the clamp), in row order.

    A reshape instead of d[d > 0]: a boolean mask's size is known only on the device, a GPU sync every step.
    """
    n = len(d)
    return d.flatten()[1:].view(n - 1, n + 1)[:, :-1].reshape(-1).mean()


def distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Huber loss between the distance matrices, each divided by its mean non-zero distance."""
    with torch.no_grad():
        t = pairwise_distances(teacher)
        t = t / mean_distance(t)
    s = pairwise_distances(student)
    s = s / mean_distance(s)
    return F.smooth_l1_loss(s, t)


def angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at vertex i between e_j and e_k, for every triplet (i, j, k)."""
    directions = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)  # [i, j] = unit(e_j - e_i)
    return torch.bmm(directions, directions.transpose(1, 2))


def angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t = angles(teacher)
    return F.smooth_l1_loss(angles(student), t)


@dataclass(frozen=True)
class RKDOptions:
    """Relational KD (Park et al. 2019)."""

    distance_weight: float = tuned(25.0, 1.0, 250.0, "Weight of the distance-wise relation loss.", ge=0, le=1e5)
    angle_weight: float = tuned(50.0, 2.0, 500.0, "Weight of the angle-wise relation loss.", ge=0, le=1e5)


@register_distiller("rkd")
class RKD(FeatureDistiller):
    """CE + distance_weight * distance loss + angle_weight * angle loss, on the penultimate embeddings."""

    Options = RKDOptions

    def __init__(
        self,
        distance_weight: float = RKDOptions.distance_weight,
        angle_weight: float = RKDOptions.angle_weight,
        layers: LayerChoice | None = None,
    ):
        super().__init__(layers)
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def feature_terms(self, student: Features, teacher: Features, batch):
        s, t = student.embedding.flatten(1), teacher.embedding.flatten(1)
        return {
            "rkd_distance": self.distance_weight * distance_loss(s, t),
            "rkd_angle": self.angle_weight * angle_loss(s, t),
        }
