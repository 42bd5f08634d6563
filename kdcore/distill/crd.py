"""Tian et al. (2020), "Contrastive Representation Distillation" (ICLR), with its memory bank."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.base import Batch
from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.layers import LayerChoice
from kdcore.distill.registry import register_distiller
from kdcore.options import option, tuned


def nce_loss(scores: torch.Tensor, num_data: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE with the positive in column 0 and K noise samples after it, noise density 1/N:
    -(sum_i log h(pos_i) + sum_ik log(1 - h(neg_ik))) / B, where h(p) = p / (p + K/N)."""
    k = scores.shape[1] - 1
    noise = k / num_data
    positive, negative = scores[:, 0], scores[:, 1:]
    log_d1 = torch.log(positive / (positive + noise + eps))
    log_d0 = torch.log(noise / (negative + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / scores.shape[0]


class Embed(nn.Module):
    """Linear projection to the contrastive space, L2-normalised (a connector: not part of the student)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.normalize(self.linear(x.flatten(1)), dim=1)


@dataclass(frozen=True)
class CRDOptions:
    """Contrastive representation distillation (Tian et al. 2020)."""

    weight: float = tuned(0.8, 0.1, 5.0, "Weight of the contrastive loss.", ge=0, le=1000)
    temperature: float = option(0.07, "Temperature of the contrastive scores.", gt=0, le=10)
    nce_k: int = option(16384, "Negatives per sample drawn from the memory bank.", ge=1, le=1_000_000)
    feat_dim: int = option(128, "Size of the contrastive embedding.", ge=1, le=65_536)
    momentum: float = option(0.5, "Momentum of the memory-bank update.", ge=0, lt=1)


@register_distiller("crd")
class CRD(FeatureDistiller):
    """CE + weight * (NCE of student vs teacher memory + NCE of teacher vs student memory).

    Each train sample has one slot per side in the memory bank (momentum-updated embeddings);
    negatives are drawn from samples of other classes (the paper's "exact" sampling).
    """

    Options = CRDOptions

    def __init__(
        self,
        weight: float = CRDOptions.weight,
        temperature: float = CRDOptions.temperature,
        nce_k: int = CRDOptions.nce_k,
        feat_dim: int = CRDOptions.feat_dim,
        momentum: float = CRDOptions.momentum,
        layers: LayerChoice | None = None,
    ):
        super().__init__(layers)
        self.weight, self.temperature, self.nce_k, self.feat_dim, self.momentum = (
            weight,
            temperature,
            nce_k,
            feat_dim,
            momentum,
        )

    def build(self, student: Features, teacher: Features, train: Split) -> None:
        n = len(train)
        self.embed_student = Embed(student.embedding.flatten(1).shape[1], self.feat_dim)
        self.embed_teacher = Embed(teacher.embedding.flatten(1).shape[1], self.feat_dim)
        bound = 1.0 / math.sqrt(self.feat_dim / 3)
        self.register_buffer("memory_student", torch.rand(n, self.feat_dim).mul_(2 * bound).sub_(bound))
        self.register_buffer("memory_teacher", torch.rand(n, self.feat_dim).mul_(2 * bound).sub_(bound))
        self.register_buffer("normaliser", torch.full((2,), -1.0))  # Z of each side, fixed on the first batch
        labels = train.y.cpu()
        counts = torch.bincount(labels)
        if int(counts.max()) == n:
            raise ValueError("CRD needs samples of at least two classes in the train split")
        self.register_buffer("by_class", torch.argsort(labels, stable=True))
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts)
        self.register_buffer("class_count", counts)

    def negatives(self, y: torch.Tensor) -> torch.Tensor:
        """K random train positions per sample, all of classes other than its own, shape (B, K)."""
        start, count = self.class_start[y][:, None], self.class_count[y][:, None]
        u = (torch.rand(len(y), self.nce_k, device=y.device) * (len(self.by_class) - count)).long()
        return self.by_class[u + count * (u >= start)]  # skip over the sample's own class block

    def scores(self, embedding: torch.Tensor, memory: torch.Tensor, index: torch.Tensor, side: int) -> torch.Tensor:
        """exp(<memory slot, embedding> / T) / Z for the positive slot and the K negatives."""
        slots = memory[index].detach()  # (B, K + 1, d)
        out = torch.exp(torch.bmm(slots, embedding[:, :, None]).squeeze(2) / self.temperature)
        # Monte-Carlo estimate of the partition function on the first batch, as in the paper's code;
        # torch.where instead of an `if` on the tensor: no GPU sync per step
        z = self.normaliser[side]
        self.normaliser[side] = torch.where(z < 0, out.detach().mean() * len(memory), z)
        return out / self.normaliser[side].clone()  # a constant; cloned, as the buffer changes in place before backward

    @torch.no_grad()
    def update_memory(self, memory: torch.Tensor, index: torch.Tensor, embedding: torch.Tensor) -> None:
        mixed = memory[index] * self.momentum + embedding.detach() * (1 - self.momentum)
        memory[index] = F.normalize(mixed, dim=1)

    def feature_terms(self, student: Features, teacher: Features, batch: Batch):
        v_s, v_t = self.embed_student(student.embedding), self.embed_teacher(teacher.embedding)
        index = torch.cat([batch.index[:, None], self.negatives(batch.y)], dim=1)
        n = len(self.memory_student)
        loss = nce_loss(self.scores(v_s, self.memory_teacher, index, 0), n) + nce_loss(
            self.scores(v_t, self.memory_student, index, 1), n
        )
        self.update_memory(self.memory_student, batch.index, v_s)
        self.update_memory(self.memory_teacher, batch.index, v_t)
        return {"crd": self.weight * loss}
