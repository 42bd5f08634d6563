"""What a lifelong model version carries: both models, the strategies' memory (e.g. the DER++ buffer),
the stream classes, the learned batch ids, the accuracy matrix and, for text, the vocabulary the models'
embeddings are indexed by. One file, loads with weights_only=True."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from kdcore.lifelong import build_strategy
from kdcore.lifelong.base import Strategy
from kdcore.models import build_model
from pipelines.checkpoint import save_atomic


@dataclass
class LifelongState:
    student: nn.Module
    student_spec: dict
    student_strategy: Strategy
    teacher: nn.Module | None = None
    teacher_spec: dict | None = None
    teacher_strategy: Strategy | None = None
    classes: list[str] = field(default_factory=list)
    learned: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)  # rows padded with NaN to the batches seen then
    tokenizer: dict | None = None  # text streams: Tokenizer.state_dict(), fixed for the life of the models

    def save(self, path: Path) -> Path:
        blob = {
            "student": model_blob(self.student, self.student_spec),
            "student_strategy": self.student_strategy.state_dict(),
            "classes": list(self.classes),
            "learned": list(self.learned),
            "matrix": [list(map(float, row)) for row in self.matrix],
        }
        if self.tokenizer is not None:
            blob["tokenizer"] = self.tokenizer
        if self.teacher is not None:
            blob["teacher"] = model_blob(self.teacher, self.teacher_spec)
            blob["teacher_strategy"] = self.teacher_strategy.state_dict()
        return save_atomic(blob, path)

    @classmethod
    def load(cls, path: Path, strategy: str, strategy_options: dict) -> LifelongState:
        blob = torch.load(path, map_location="cpu", weights_only=True)

        def rebuild(part):
            spec = part["spec"]
            model = build_model(spec["arch"], tuple(spec["input_shape"]), spec["num_classes"], **spec["options"])
            model.load_state_dict(part["state_dict"])
            return model.eval(), {k: v for k, v in spec.items() if k != "num_classes"}

        def strategy_from(state):
            s = build_strategy(strategy, **strategy_options)
            if state.get("name", strategy) == strategy:
                s.load_state_dict(state)
            else:  # another strategy's memory does not fit this one; it still knows the model has learned
                s.tasks_seen = state["tasks_seen"]
            return s

        student, student_spec = rebuild(blob["student"])
        state = cls(
            student,
            student_spec,
            strategy_from(blob["student_strategy"]),
            classes=blob["classes"],
            learned=blob["learned"],
            matrix=blob["matrix"],
            tokenizer=blob.get("tokenizer"),
        )
        if "teacher" in blob:
            state.teacher, state.teacher_spec = rebuild(blob["teacher"])
            state.teacher_strategy = strategy_from(blob["teacher_strategy"])
        return state


def model_blob(model: nn.Module, spec: dict) -> dict:
    """A model as `build_model` arguments and weights (the checkpoint layout the text pyfunc model loads)."""
    spec = {**spec, "num_classes": model_out(model)}
    return {"spec": spec, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def model_out(model: nn.Module) -> int:
    from kdcore.lifelong.head import last_linear

    return last_linear(model)[2].out_features
