"""The base of feature methods: hooks on both models, the teacher run online on the same batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.base import Batch, Distiller
from kdcore.distill.hooks import FeatureTap
from kdcore.distill.layers import LayerChoice, embedding_of, stages_of
from kdcore.forward_mode import ForwardMode


@dataclass
class Features:
    """What one model saw on a batch: its stage outputs (shallow to deep) and its penultimate embedding."""

    stages: list[torch.Tensor]
    embedding: torch.Tensor


class FeatureDistiller(Distiller):
    """CE on the labels plus a term on intermediate features; subclasses build connectors in `build`.

    The teacher is held outside the module tree, so its weights are neither optimised, moved by
    `.to()` nor saved with the distiller; it runs in eval mode without gradients.
    """

    needs_features = True

    def __init__(self, layers: LayerChoice | None = None):
        super().__init__()
        self.layers = layers or LayerChoice()
        self._taps: dict[str, FeatureTap] = {}
        self._names: dict[str, tuple[list[str], str]] = {}
        object.__setattr__(self, "_teacher", None)

    def attach(
        self, student: nn.Module, teacher: nn.Module | None, train: Split, sample: torch.Tensor | None = None
    ) -> None:
        if teacher is None:
            raise ValueError(f"{type(self).__name__} reads the teacher's features: pass the teacher model to fit")
        probe = train.x[:2] if sample is None else sample  # model-ready inputs, only their shapes matter
        c = self.layers
        for role, model, stages, embedding in (
            ("student", student, c.student, c.student_embedding),
            ("teacher", teacher, c.teacher, c.teacher_embedding),
        ):
            names = (stages_of(model, stages, role, probe), embedding_of(model, embedding, role))
            self._names[role] = names
            self._taps[role] = FeatureTap(model, names[0], [names[1]], role=role)
        object.__setattr__(self, "_teacher", teacher)
        with torch.no_grad():  # one tiny forward each, to learn the feature shapes connectors must bridge
            was_training = student.training
            student.eval()
            student(probe)
            student.train(was_training)
            teacher(probe)
        self.build(self._read("student"), self._read("teacher"), train)

    def build(self, student: Features, teacher: Features, train: Split) -> None:
        """Create connectors or buffers from the probed feature shapes (default: nothing)."""

    def detach(self) -> None:
        for tap in self._taps.values():
            tap.remove()
        self._taps = {}
        object.__setattr__(self, "_teacher", None)

    def _read(self, role: str) -> Features:
        """Float32 views of the tapped tensors: the loss terms stay float32 under autocast (no-op in fp32)."""
        tap, (stages, embedding) = self._taps[role], self._names[role]
        return Features([tap.outputs[n].float() for n in stages], tap.inputs[embedding].float())

    def features(self, batch: Batch) -> tuple[Features, Features]:
        """The student's features from its forward on this batch, and the teacher's on the same inputs."""
        # the teacher runs in the same arithmetic as the student's forward did
        with torch.no_grad(), ForwardMode(batch.autocast).context(batch.x.device):
            self._teacher(batch.x)
        return self._read("student"), self._read("teacher")

    def loss_terms(self, student_logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        student, teacher = self.features(batch)
        return {"ce": F.cross_entropy(student_logits, batch.y), **self.feature_terms(student, teacher, batch)}

    def feature_terms(self, student: Features, teacher: Features, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def stage_pairs(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stages paired from the deep end, so a 2-stage student meets the last 2 stages of a 3-stage teacher."""
    n = min(len(student), len(teacher))
    return list(zip(student[len(student) - n :], teacher[len(teacher) - n :]))
