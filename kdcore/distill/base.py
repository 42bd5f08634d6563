"""The distiller contract: given the student's logits on a batch, return named loss terms."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Batch:
    """One training batch; `index` locates it in the train split (for cached teacher outputs)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    teacher_logits: torch.Tensor | None = None


class Distiller(nn.Module):
    """One KD method. The training loop minimises the sum of `loss_terms` and logs each term."""

    needs_teacher: bool = True

    def loss_terms(self, student_logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class LabelsOnly(Distiller):
    """Plain cross-entropy on the labels: the baseline every KD method must beat."""

    needs_teacher = False

    def loss_terms(self, student_logits, batch):
        return {"ce": F.cross_entropy(student_logits, batch.y)}
