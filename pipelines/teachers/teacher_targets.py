"""The student's soft targets for a pipeline run, from what the teacher-logits stage cached (kdcore/soft_targets.py).

With augmented data and distill.teacher_views = K > 0 the stage caches K views per sample; with augmented data
and no views it caches nothing and the teacher runs online; otherwise it caches the logits of the plain images.
"""

from __future__ import annotations

import torch

from kdcore.data import DataBundle
from kdcore.soft_targets import SoftTargets
from kdcore.teacher_views import TeacherViews
from pipelines.cache.checkpoint import load_model


def cached_logits_valid(bundle: DataBundle) -> bool:
    return not bundle.view.augments


def teacher_targets(
    bundle: DataBundle, teacher_checkpoint: str | None, logits_path: str, need_model: bool = False
) -> SoftTargets:
    """`logits_path`: what the teacher-logits stage returned: logits (plain data), views (augmented data,
    distill.teacher_views > 0) or "" (augmented, teacher online). `need_model`: a feature method reads the
    teacher's features too, so the model comes along."""
    online = bundle.view.augments and not logits_path
    model = load_model(teacher_checkpoint) if need_model or online else None
    if online:
        return SoftTargets(teacher=model)
    if cached_logits_valid(bundle):
        return SoftTargets(logits=torch.load(logits_path, map_location="cpu", weights_only=True), teacher=model)
    return SoftTargets(views=TeacherViews.load(logits_path), teacher=model)
