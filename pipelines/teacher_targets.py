"""Where the student's soft targets come from: cached logits, cached consistent views, or the teacher run online.

Logits cached for the train split are the teacher's outputs on the un-augmented images, so they are
only valid when training batches are not augmented. When the data view augments, either the teacher
runs online on the same augmented batch the student sees (eval mode, no gradients), or, with
distill.teacher_views = K > 0, the student replays K cached views per sample whose teacher logits were
stored (kdcore/teacher_views.py). Feature methods read the teacher's features, so they always get the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from kdcore.data import DataBundle
from kdcore.teacher_views import TeacherViews
from pipelines.checkpoint import load_model


@dataclass
class TeacherTargets:
    logits: torch.Tensor | None = None  # one row per training sample, from the teacher-logits stage
    views: TeacherViews | None = None  # K augmented views per training sample and the teacher's logits on each
    model: nn.Module | None = None  # the teacher itself, run on each training batch

    @property
    def kind(self) -> str:
        if self.logits is not None:
            return "cached logits"
        return "cached views" if self.views is not None else "online teacher"


def cached_logits_valid(bundle: DataBundle) -> bool:
    return not bundle.view.augments


def teacher_targets(
    bundle: DataBundle, teacher_checkpoint: str | None, logits_path: str, need_model: bool = False
) -> TeacherTargets:
    """`logits_path`: what the teacher-logits stage returned: logits (plain data), views (augmented data,
    distill.teacher_views > 0) or "" (augmented, teacher online). `need_model`: a feature method reads the
    teacher's features too, so the model comes along."""
    online = bundle.view.augments and not logits_path
    model = load_model(teacher_checkpoint) if need_model or online else None
    if online:
        return TeacherTargets(model=model)
    if cached_logits_valid(bundle):
        return TeacherTargets(logits=torch.load(logits_path, map_location="cpu", weights_only=True), model=model)
    return TeacherTargets(views=TeacherViews.load(logits_path), model=model)
