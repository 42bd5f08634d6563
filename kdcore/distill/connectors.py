"""Small learnable adapters that map a student feature onto the teacher's shape.

They belong to the distiller, not the student: trained with it, never saved or counted with it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def align(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring two features to the same rank and spatial size; channels may still differ.

    A feature map compared with a vector is average-pooled to a vector; of two feature maps the
    larger is average-pooled to the smaller's height and width (no information is invented).
    """
    if student.dim() == 4 and teacher.dim() == 4:
        (hs, ws), (ht, wt) = student.shape[2:], teacher.shape[2:]
        size = (min(hs, ht), min(ws, wt))
        if (hs, ws) != size:
            student = F.adaptive_avg_pool2d(student, size)
        if (ht, wt) != size:
            teacher = F.adaptive_avg_pool2d(teacher, size)
        return student, teacher
    return as_vector(student), as_vector(teacher)


def as_vector(feature: torch.Tensor) -> torch.Tensor:
    if feature.dim() == 4:
        feature = F.adaptive_avg_pool2d(feature, 1)
    return feature.flatten(1)


def connector(student_channels: int, teacher_channels: int, spatial: bool) -> nn.Module:
    """Identity when the channels already match; else a 1x1 conv + BN (maps) or a linear layer (vectors)."""
    if student_channels == teacher_channels:
        return nn.Identity()
    if spatial:
        return nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, 1, bias=False), nn.BatchNorm2d(teacher_channels)
        )
    return nn.Linear(student_channels, teacher_channels)
