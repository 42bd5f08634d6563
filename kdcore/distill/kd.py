"""Hinton et al. (2015), "Distilling the Knowledge in a Neural Network"."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller
from kdcore.distill.member_terms import cross_entropy, kl
from kdcore.distill.registry import register_distiller
from kdcore.options import tuned


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch.

    The T^2 factor keeps the soft-target gradients at the same scale as the hard-label ones
    when T changes (Hinton et al., section 2). The teacher side carries no gradient.
    """
    t = temperature
    log_p_student = F.log_softmax(student_logits / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * t * t


def teacher_logits_of(batch: Batch, method: str) -> torch.Tensor:
    if batch.teacher_logits is None:
        raise ValueError(f"{method} needs teacher logits for every batch")
    return batch.teacher_logits


@dataclass(frozen=True)
class KDOptions:
    """Hinton et al. 2015: the soft targets at temperature T, weighed against the labels."""

    temperature: float = tuned(4.0, 1.0, 8.0, "KD: softmax temperature T of the soft targets.", log=False, gt=0, le=100)
    alpha: float = tuned(
        0.9, 0.1, 0.95, "KD: weight of the distillation term; 1 - alpha weights the labels.", log=False, ge=0, le=1
    )


@register_distiller("kd")
class KD(Distiller):
    """(1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T)."""

    member_params = ("temperature", "alpha")
    Options = KDOptions

    def __init__(self, temperature: float = KDOptions.temperature, alpha: float = KDOptions.alpha):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def loss_terms(self, student_logits, batch: Batch):
        teacher_logits = teacher_logits_of(batch, "KD")
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(student_logits, batch.y),
            "kd": self.alpha * kd_loss(student_logits, teacher_logits, self.temperature),
        }

    def member_terms(self, logits, batch: Batch, values):
        """`loss_terms` for K stacked members (kdcore/distill/member_terms.py): logits [K, B, C], values [K]."""
        t, alpha = values["temperature"], values["alpha"]
        z, teacher = logits.transpose(1, 2), teacher_logits_of(batch, "KD").detach().T
        divergence = kl(F.log_softmax(z / t[:, None, None], 1), F.log_softmax(teacher / t[:, None, None], 1))
        return {"ce": (1 - alpha) * cross_entropy(z, batch.y), "kd": alpha * divergence * t * t}
