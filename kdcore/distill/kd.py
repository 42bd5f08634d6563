"""Hinton et al. (2015), "Distilling the Knowledge in a Neural Network"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller
from kdcore.distill.registry import register_distiller


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


@register_distiller("kd")
class KD(Distiller):
    """(1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T)."""

    member_params = ("temperature", "alpha")

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def loss_terms(self, student_logits, batch: Batch):
        teacher_logits = teacher_logits_of(batch, "KD")
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(student_logits, batch.y),
            "kd": self.alpha * kd_loss(student_logits, teacher_logits, self.temperature),
        }
