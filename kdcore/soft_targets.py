"""Where a student's soft targets come from: nowhere (labels only), cached logits, cached views or the teacher online.

Cached logits are the teacher's outputs on the un-augmented training samples, so they are valid only when the
training batches are not augmented. Under augmentation, either the teacher scores each batch online, exactly as
the student sees it, or the student replays cached consistent views whose teacher logits were stored
(kdcore/teacher_views.py). Feature methods read the teacher's features, so they always need the model as well.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.data.view import InputView
from kdcore.distill.base import Distiller
from kdcore.teacher_views import TeacherViews


@dataclass(frozen=True)
class SoftTargets:
    logits: torch.Tensor | None = None  # (N, C): the teacher's outputs on train.x[i], computed once
    views: TeacherViews | None = None  # K augmented views per training sample and the teacher's logits on each
    teacher: nn.Module | None = None  # eval mode, never updated: soft targets online when none are cached; features

    def __post_init__(self):
        if self.logits is not None and self.views is not None:
            raise ValueError("soft targets: pass cached logits (plain inputs) or cached views (augmented), not both")

    @property
    def kind(self) -> str:
        if self.logits is not None:
            return "cached logits"
        if self.views is not None:
            return "cached views"
        return "online teacher" if self.teacher is not None else "none"

    def check(self, train: Split, view: InputView, distiller: Distiller) -> None:
        """Raise ValueError, naming the fix, when these targets cannot feed `distiller` on `train` under `view`."""
        if self.logits is not None:
            if view.augments:
                raise ValueError(
                    "cached teacher logits are for un-augmented inputs; give the teacher to score each augmented "
                    "batch, or cached views to replay"
                )
            if len(self.logits) != len(train):
                raise ValueError(
                    f"cached teacher logits cover {len(self.logits)} samples, not this train split's {len(train)}; "
                    "compute them again"
                )
        if self.views is not None and (self.views.view != view or len(self.views) != len(train)):
            raise ValueError(
                f"teacher views were built for {len(self.views)} samples under {self.views.view}, "
                f"not this train split ({len(train)} samples under {view}); build them again"
            )
        if distiller.needs_features and self.teacher is None:
            raise ValueError(f"{type(distiller).__name__} reads the teacher's features: the teacher model is needed")

    def to(self, device: torch.device) -> SoftTargets:
        """Cached logits and views on `device` (the teacher is placed by the training loop, with its memory format)."""
        return replace(
            self,
            logits=None if self.logits is None else self.logits.to(device, torch.float32),
            views=None if self.views is None else self.views.to(device),
        )
