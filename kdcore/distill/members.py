"""The logit methods' loss terms for K stacked members at once, each with its own weights and temperature.

Logits are [K, B, C] (member, sample, class), the batch's labels and teacher logits are shared, each of a
method's `member_params` is a [K] tensor, and every term comes back as [K]: the member's own term, by the same
formula as the method's file (labels-only, kd.py, dkd.py, dist.py) with the class axis last and the batch mean
taken per member. Broadcast, not vmap: one kernel per op, where vmap of the scalar formulas costs a few times
more per op than the K members' whole step (tests/test_vectorised_fit.py checks both against each other).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller, LabelsOnly
from kdcore.distill.dist import DIST
from kdcore.distill.dkd import DKD
from kdcore.distill.kd import KD, teacher_logits_of


class MemberLosses:
    def __init__(self, distillers: list[Distiller]):
        method = type(distillers[0])
        if any(type(d) is not method for d in distillers):
            raise ValueError("stacked members must share one distillation method; group trials by method")
        if method.member_params is None or method not in MEMBER_TERMS:
            raise ValueError(
                f"{method.__name__} cannot train stacked members (it reads features or keeps its own state); "
                "train its trials one at a time"
            )
        fixed = [settings_of(d, exclude=method.member_params) for d in distillers]
        if any(f != fixed[0] for f in fixed):
            raise ValueError(
                f"stacked {method.__name__} members may differ only in {', '.join(method.member_params) or 'nothing'}"
            )
        self.template = distillers[0]  # the settings members share (DKD's warm-up)
        self.values = {
            name: torch.tensor([float(getattr(d, name)) for d in distillers]) for name in method.member_params
        }

    def to(self, device: torch.device) -> MemberLosses:
        self.values = {k: v.to(device) for k, v in self.values.items()}
        return self

    def select(self, keep: torch.Tensor) -> None:
        self.values = {k: v[keep.to(v.device)] for k, v in self.values.items()}

    def __call__(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Each term of the method per member, [K], from the members' logits [K, B, C] on one shared batch."""
        return MEMBER_TERMS[type(self.template)](self.template, logits, batch, self.values)


def settings_of(distiller: Distiller, exclude: tuple[str, ...]) -> dict:
    """A distiller's plain settings (floats, ints, strings), but those in `exclude`."""
    return {
        k: v
        for k, v in vars(distiller).items()
        if not k.startswith("_") and k != "training" and k not in exclude and isinstance(v, (int, float, str, bool))
    }


# The formulas below hold logits as [K, C, B] (class axis 1, batch last): a softmax over a short class axis is
# a fast vectorised kernel along the batch there, and about 25 times slower as the innermost axis of [K, B, C].


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy on the labels, [K]."""
    labels = y.view(1, 1, -1).expand(len(z), 1, -1)
    return -F.log_softmax(z, 1).gather(1, labels).mean((1, 2))


def kl(log_student: torch.Tensor, log_teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) from log-probabilities [K, n, B], summed over n, averaged over the batch: [K]."""
    return F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(1).mean(-1)


def labels_terms(method: LabelsOnly, logits, batch, values):
    return {"ce": cross_entropy(logits.transpose(1, 2), batch.y)}


def kd_terms(method: KD, logits, batch, values):
    t, alpha = values["temperature"], values["alpha"]
    z, teacher = logits.transpose(1, 2), teacher_logits_of(batch, "KD").detach().T
    divergence = kl(F.log_softmax(z / t[:, None, None], 1), F.log_softmax(teacher / t[:, None, None], 1))
    return {"ce": (1 - alpha) * cross_entropy(z, batch.y), "kd": alpha * divergence * t * t}


def binary_log_probs(z: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dkd.binary_log_probs per member: log [p_target, 1 - p_target] at each member's temperature, [K, 2, B]."""
    log_p = F.log_softmax(z / t[:, None, None], 1)
    is_target = F.one_hot(target, z.shape[1]).T.bool()
    log_target = log_p.gather(1, target.view(1, 1, -1).expand(len(log_p), 1, -1))
    log_other = torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), 1, keepdim=True)
    return torch.cat([log_target, log_other], 1)


def non_target_logits(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dkd.non_target_logits per member: [K, C - 1, B]."""
    k, c, b = z.shape
    others = torch.arange(c - 1, device=z.device)[:, None].expand(-1, b)
    return z.gather(1, (others + (others >= target[None, :])).expand(k, -1, -1))


def dkd_terms(method: DKD, logits, batch, values):
    t, y = values["temperature"], batch.y
    z = logits.transpose(1, 2)
    teacher = teacher_logits_of(batch, "DKD").detach().T.expand_as(z)
    scaled = t[:, None, None]
    tckd = kl(binary_log_probs(z, y, t), binary_log_probs(teacher, y, t))
    nckd = kl(
        F.log_softmax(non_target_logits(z, y) / scaled, 1),
        F.log_softmax(non_target_logits(teacher, y) / scaled, 1),
    )
    ramp = method.ramp(batch)
    return {
        "ce": cross_entropy(z, y),
        "tckd": ramp * values["alpha"] * tckd * t * t,
        "nckd": ramp * values["beta"] * nckd * t * t,
    }


def mean_pearson(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    """dist.mean_pearson per member: the correlation along `dim`, averaged over the other non-member axis, [K]."""
    a, b = a - a.mean(dim, keepdim=True), b - b.mean(dim, keepdim=True)
    return ((a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)).mean(-1)


def dist_terms(method: DIST, logits, batch, values):
    t = values["temperature"]
    z, scaled = logits.transpose(1, 2), t[:, None, None]
    ys = F.softmax(z / scaled, 1)
    yt = F.softmax(teacher_logits_of(batch, "DIST").detach().T / scaled, 1)
    inter = 1 - mean_pearson(ys, yt, dim=1)  # each sample across classes
    intra = 1 - mean_pearson(ys, yt, dim=2)  # each class across the batch
    return {
        "ce": cross_entropy(z, batch.y),
        "inter": values["beta"] * inter * t * t,
        "intra": values["gamma"] * intra * t * t,
    }


MEMBER_TERMS = {LabelsOnly: labels_terms, KD: kd_terms, DKD: dkd_terms, DIST: dist_terms}
