"""Zhao et al. (2022), "Decoupled Knowledge Distillation" (CVPR): KD split into TCKD and NCKD."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller
from kdcore.distill.kd import teacher_logits_of
from kdcore.distill.member_terms import cross_entropy, kl
from kdcore.distill.registry import register_distiller
from kdcore.options import option, tuned


def binary_log_probs(logits: torch.Tensor, target: torch.Tensor, t: float) -> torch.Tensor:
    """log [p_target, 1 - p_target] at temperature t, computed stably in log space, shape (B, 2)."""
    log_p = F.log_softmax(logits / t, dim=1)
    is_target = F.one_hot(target, logits.shape[1]).bool()
    log_target = log_p.gather(1, target[:, None])
    log_other = torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), dim=1, keepdim=True)
    return torch.cat([log_target, log_other], dim=1)


def non_target_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The logits of every class but the labelled one, in class order, shape (B, C - 1)."""
    # a gather, not a boolean mask: masking needs the result's size on the host, a GPU sync every step
    others = torch.arange(logits.shape[1] - 1, device=logits.device).expand(len(logits), -1)
    return logits.gather(1, others + (others >= target[:, None]))


def dkd_terms(
    student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, t: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each T^2 * KL(teacher || student), batch mean: on the binary target/other
    split, and on the distribution among the non-target classes."""
    teacher = teacher.detach()
    tckd = F.kl_div(
        binary_log_probs(student, target, t),
        binary_log_probs(teacher, target, t),
        reduction="batchmean",
        log_target=True,
    )
    nckd = F.kl_div(
        F.log_softmax(non_target_logits(student, target) / t, dim=1),
        F.log_softmax(non_target_logits(teacher, target) / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return tckd * t * t, nckd * t * t


def member_binary_log_probs(z: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """binary_log_probs per member: log [p_target, 1 - p_target] at each member's temperature, [K, 2, B]."""
    log_p = F.log_softmax(z / t[:, None, None], 1)
    is_target = F.one_hot(target, z.shape[1]).T.bool()
    log_target = log_p.gather(1, target.view(1, 1, -1).expand(len(log_p), 1, -1))
    log_other = torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), 1, keepdim=True)
    return torch.cat([log_target, log_other], 1)


def member_non_target_logits(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """non_target_logits per member: [K, C - 1, B]."""
    k, c, b = z.shape
    others = torch.arange(c - 1, device=z.device)[:, None].expand(-1, b)
    return z.gather(1, (others + (others >= target[None, :])).expand(k, -1, -1))


@dataclass(frozen=True)
class DKDOptions:
    """Decoupled KD (Zhao et al. 2022).

    Defaults: the paper's CIFAR-100 resnet32x4 -> resnet8x4 settings."""

    alpha: float = tuned(1.0, 0.25, 4.0, "Weight of target-class KD (TCKD).", ge=0, le=1000)
    beta: float = tuned(8.0, 1.0, 16.0, "Weight of non-target-class KD (NCKD).", ge=0, le=1000)
    temperature: float = tuned(4.0, 1.0, 8.0, "Softmax temperature.", log=False, gt=0, le=100)
    warmup: float = option(
        20 / 240, "Share of the epochs over which the DKD term ramps up linearly (paper: 20 of 240).", ge=0, le=1
    )


@register_distiller("dkd")
class DKD(Distiller):
    """CE + ramp * (alpha * TCKD + beta * NCKD); the ramp grows linearly over the first `warmup` share of epochs."""

    member_params = ("alpha", "beta", "temperature")
    Options = DKDOptions

    def __init__(
        self,
        alpha: float = DKDOptions.alpha,
        beta: float = DKDOptions.beta,
        temperature: float = DKDOptions.temperature,
        warmup: float = DKDOptions.warmup,
    ):
        super().__init__()
        self.alpha, self.beta, self.temperature, self.warmup = alpha, beta, temperature, warmup

    def ramp(self, batch: Batch) -> float:
        # The paper warms up over 20 of 240 epochs; as a share it carries over to any schedule length.
        return 1.0 if self.warmup <= 0 else min(batch.epoch / (self.warmup * batch.epochs), 1.0)

    def loss_terms(self, student_logits, batch: Batch):
        tckd, nckd = dkd_terms(student_logits, teacher_logits_of(batch, "DKD"), batch.y, self.temperature)
        ramp = self.ramp(batch)
        return {
            "ce": F.cross_entropy(student_logits, batch.y),
            "tckd": ramp * self.alpha * tckd,
            "nckd": ramp * self.beta * nckd,
        }

    def member_terms(self, logits, batch: Batch, values):
        """`loss_terms` for K stacked members (kdcore/distill/member_terms.py): logits [K, B, C], values [K]."""
        t, y = values["temperature"], batch.y
        z = logits.transpose(1, 2)
        teacher = teacher_logits_of(batch, "DKD").detach().T.expand_as(z)
        scaled = t[:, None, None]
        tckd = kl(member_binary_log_probs(z, y, t), member_binary_log_probs(teacher, y, t))
        nckd = kl(
            F.log_softmax(member_non_target_logits(z, y) / scaled, 1),
            F.log_softmax(member_non_target_logits(teacher, y) / scaled, 1),
        )
        ramp = self.ramp(batch)
        return {
            "ce": cross_entropy(z, y),
            "tckd": ramp * values["alpha"] * tckd * t * t,
            "nckd": ramp * values["beta"] * nckd * t * t,
        }
