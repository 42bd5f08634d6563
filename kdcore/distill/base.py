"""The distiller contract: given the student's logits on a batch, return named loss terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.member_terms import cross_entropy
from kdcore.options import NoOptions


@dataclass
class Batch:
    """One training batch; `index` locates it in the train split (cached teacher outputs, CRD's memory)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    epoch: int = 1  # 1-based, so methods with a warm-up (DKD) know how far training is
    epochs: int = 1
    autocast: torch.dtype | None = None  # the loop's mixed-precision dtype, for forward passes made inside loss_terms


class Distiller(nn.Module):
    """One KD method. The training loop minimises the sum of `loss_terms` and logs each term.

    Its own parameters (connectors, embedding heads) are optimised with the student but are not
    part of the student: they are never saved with it nor counted in its size.
    """

    needs_features: bool = False  # True: the loop must pass the teacher model itself, not only its logits
    Options: type = NoOptions  # its settings, declared with kdcore.options.option / tuned
    # The weights that may differ between members trained as one stacked group (`member_terms`);
    # None: the method cannot train stacked members (it reads features, or keeps state of its own).
    member_params: tuple[str, ...] | None = None

    def attach(
        self, student: nn.Module, teacher: nn.Module | None, train: Split, sample: torch.Tensor | None = None
    ) -> None:
        """Called by the loop before the first step; methods that read features install hooks here.

        `sample`: a few model-ready inputs (default: the first rows of `train.x`) to probe feature shapes.
        """

    def detach(self) -> None:
        """Called by the loop after the last step, also on errors: removes whatever `attach` installed."""

    def loss_terms(self, student_logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def member_terms(self, logits: torch.Tensor, batch: Batch, values: dict) -> dict[str, torch.Tensor]:
        """`loss_terms` of K stacked members at once: logits [K, B, C], each of `member_params` a [K] tensor in
        `values`, each term [K] (kdcore/distill/member_terms.py). Only methods with `member_params` have it."""
        raise NotImplementedError


class LabelsOnly(Distiller):
    """Plain cross-entropy on the labels: the baseline every KD method must beat."""

    member_params = ()

    def loss_terms(self, student_logits, batch):
        return {"ce": F.cross_entropy(student_logits, batch.y)}

    def member_terms(self, logits, batch, values):
        return {"ce": cross_entropy(logits.transpose(1, 2), batch.y)}
