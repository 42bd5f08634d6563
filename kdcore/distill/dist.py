"""Huang et al. (2022), "Knowledge Distillation from A Stronger Teacher" (DIST, NeurIPS)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller
from kdcore.distill.kd import teacher_logits_of
from kdcore.distill.member_terms import cross_entropy
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


def mean_pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each row of `a` with the same row of `b`, averaged over rows."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)).mean()


def dist_terms(student: torch.Tensor, teacher: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(inter, intra): T^2 * (1 - Pearson) between the softened predictions, per sample across classes
    (inter-class relation) and per class across the batch (intra-class relation)."""
    ys, yt = F.softmax(student / t, dim=1), F.softmax(teacher.detach() / t, dim=1)
    inter = 1 - mean_pearson(ys, yt)
    intra = 1 - mean_pearson(ys.T, yt.T)
    return inter * t * t, intra * t * t


def member_mean_pearson(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    """mean_pearson per member: the correlation along `dim`, averaged over the other non-member axis, [K]."""
    a, b = a - a.mean(dim, keepdim=True), b - b.mean(dim, keepdim=True)
    return ((a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)).mean(-1)


@dataclass(frozen=True)
class DISTOptions:
    """DIST (Huang et al. 2022).

    Defaults: the paper's CIFAR-100 settings."""

    beta: float = tuned(2.0, 0.5, 8.0, "Weight of the inter-class relation term.", ge=0, le=1000)
    gamma: float = tuned(2.0, 0.5, 8.0, "Weight of the intra-class relation term.", ge=0, le=1000)
    temperature: float = tuned(4.0, 1.0, 8.0, "Softmax temperature.", log=False, gt=0, le=100)


@register_distiller("dist")
class DIST(Distiller):
    """CE + beta * inter-class + gamma * intra-class relation loss."""

    member_params = ("beta", "gamma", "temperature")
    Options = DISTOptions

    def __init__(
        self,
        beta: float = DISTOptions.beta,
        gamma: float = DISTOptions.gamma,
        temperature: float = DISTOptions.temperature,
    ):
        super().__init__()
        self.beta, self.gamma, self.temperature = beta, gamma, temperature

    def loss_terms(self, student_logits, batch: Batch):
        inter, intra = dist_terms(student_logits, teacher_logits_of(batch, "DIST"), self.temperature)
        return {
            "ce": F.cross_entropy(student_logits, batch.y),
            "inter": self.beta * inter,
            "intra": self.gamma * intra,
        }

    def member_terms(self, logits, batch: Batch, values):
        """`loss_terms` for K stacked members (kdcore/distill/member_terms.py): logits [K, B, C], values [K]."""
        t = values["temperature"]
        z, scaled = logits.transpose(1, 2), t[:, None, None]
        ys = F.softmax(z / scaled, 1)
        yt = F.softmax(teacher_logits_of(batch, "DIST").detach().T / scaled, 1)
        inter = 1 - member_mean_pearson(ys, yt, dim=1)  # each sample across classes
        intra = 1 - member_mean_pearson(ys, yt, dim=2)  # each class across the batch
        return {
            "ce": cross_entropy(z, batch.y),
            "inter": values["beta"] * inter * t * t,
            "intra": values["gamma"] * intra * t * t,
        }
