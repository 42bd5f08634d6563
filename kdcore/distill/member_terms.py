"""Helpers of the logit methods' formulas for K stacked members at once (each method's `member_terms`).

Logits arrive as [K, B, C] (member, sample, class); the batch's labels and teacher logits are shared; each of a
method's `member_params` is a [K] tensor, and every term comes back as [K]: the member's own term, by the same formula
as the method's scalar `loss_terms`, the batch mean taken per member. Broadcast, not vmap: one kernel per op, where
vmap of the scalar formulas costs a few times more per op than the K members' whole step
(tests/test_vectorised_fit.py checks both against each other).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The formulas below hold logits as [K, C, B] (class axis 1, batch last): a softmax over a short class axis is
# a fast vectorised kernel along the batch there, and about 25 times slower as the innermost axis of [K, B, C].


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy on the labels, [K]."""
    labels = y.view(1, 1, -1).expand(len(z), 1, -1)
    return -F.log_softmax(z, 1).gather(1, labels).mean((1, 2))


def kl(log_student: torch.Tensor, log_teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) from log-probabilities [K, n, B], summed over n, averaged over the batch: [K]."""
    return F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(1).mean(-1)
