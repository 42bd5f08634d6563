"""Where the student's soft targets come from: cached logits, or the teacher run online.

Logits cached for the train split are the teacher's outputs on the un-augmented images, so they are
only valid when training batches are not augmented. When the data view augments, the teacher runs
online on the same augmented batch the student sees (eval mode, no gradients). A cache of logits
for consistent augmented views would slot in here, as a third kind of source.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from kdcore.data import DataBundle
from pipelines.checkpoint import load_model


@dataclass
class TeacherTargets:
    logits: torch.Tensor | None = None  # one row per training sample, from the teacher-logits stage
    model: nn.Module | None = None  # the teacher itself, run on each training batch

    @property
    def kind(self) -> str:
        return "cached logits" if self.logits is not None else "online teacher"


def cached_logits_valid(bundle: DataBundle) -> bool:
    return not bundle.view.augments


def teacher_targets(bundle: DataBundle, teacher_checkpoint: str | None, logits_path: str, need_model: bool = False) -> TeacherTargets:
    """`need_model`: a feature method reads the teacher's features too, so the model comes along."""
    if cached_logits_valid(bundle):
        model = load_model(teacher_checkpoint) if need_model else None
        return TeacherTargets(logits=torch.load(logits_path, map_location="cpu", weights_only=True), model=model)
    return TeacherTargets(model=load_model(teacher_checkpoint))
