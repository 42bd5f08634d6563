"""Typed settings of one retraining on a data stream: the flow's parameters and the MLflow params."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ARCH = {"image": {"teacher": "mlp", "student": "mlp"}, "text": {"teacher": "textcnn", "student": "fasttext"}}


class RetrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream: str = Field(description="Name of the data stream to learn from.")
    store_dir: str = Field("mlruns", description="Root of the stream store (holds streams/<name>/batches).")
    strategy: Literal["finetune", "lwf", "derpp", "joint"] = Field("derpp", description="Lifelong-learning strategy.")
    mode: Literal["teacher_student", "student_only"] = Field(
        "teacher_student",
        description="Update the teacher then distil the student, or update the student alone (cheaper).",
    )
    teacher_arch: str | None = Field(
        None,
        description="Registered model name of the teacher (default: mlp for image streams, textcnn for text streams).",
    )
    teacher_width: int = Field(100, ge=1, le=4096, description="Width of the teacher.")
    teacher_depth: int = Field(2, ge=1, le=16, description="Hidden layers of the teacher (mlp only).")
    student_arch: str | None = Field(
        None,
        description="Registered model name of the student, the served model "
        "(default: mlp for image streams, fasttext for text streams).",
    )
    student_width: int = Field(32, ge=1, le=4096, description="Width of the student.")
    student_depth: int = Field(1, ge=1, le=16, description="Hidden layers of the student (mlp only).")
    epochs: int = Field(1, ge=1, le=1000, description="Passes over each new batch.")
    batch_size: int = Field(10, ge=1, le=65_536, description="Examples per SGD step.")
    lr: float = Field(0.03, gt=0, le=10, description="SGD learning rate.")
    buffer_size: int = Field(200, ge=1, le=1_000_000, description="DER++ replay buffer capacity.")
    alpha: float = Field(
        0.2, ge=0, le=100, description="DER++ weight of the replayed-logits MSE; LwF weight of the distillation term."
    )
    beta: float = Field(1.0, ge=0, le=100, description="DER++ weight of the replayed-labels CE.")
    replay_batch_size: int = Field(32, ge=1, le=65_536, description="DER++ examples replayed per step.")
    temperature: float = Field(2.0, gt=0, le=100, description="Softmax temperature of LwF and of teacher->student KD.")
    kd_weight: float = Field(1.0, ge=0, le=100, description="Weight of the teacher->student KD term.")
    vocab_size: int = Field(
        20_000,
        ge=3,
        le=10_000_000,
        description="Text streams: most words in the vocabulary "
        "(with <pad> and <unk>), fitted once on the stream's first batch and then kept.",
    )
    min_freq: int = Field(2, ge=1, description="Text streams: a word the first batch has fewer times is <unk>.")
    max_len: int = Field(256, ge=1, le=100_000, description="Text streams: tokens kept per text.")
    tolerance: float = Field(
        0.02, ge=-1, le=1, description="Promote if average accuracy is at most this far below the champion's."
    )
    seed: int = Field(0, ge=0, description="Seed of initialisation, shuffling and the replay buffer.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite in store_dir)."
    )

    @field_validator("teacher_arch", "student_arch")
    @classmethod
    def _known_arch(cls, arch: str | None) -> str | None:
        from kdcore.models import MODELS

        if arch is not None and arch not in MODELS:
            raise ValueError(f"unknown model {arch!r}; choose one of {sorted(MODELS)}")
        return arch

    def for_modality(self, modality: str) -> RetrainConfig:
        """This config with the models a stream of `modality` needs: defaults filled in, mismatches refused."""
        from kdcore.models import MODELS
        from kdcore.models.text import TEXT_MODELS

        update = {}
        for role in ("teacher", "student"):
            arch = getattr(self, f"{role}_arch")
            if arch is None:
                update[f"{role}_arch"] = DEFAULT_ARCH[modality][role]
            elif (arch in TEXT_MODELS) != (modality == "text"):
                reads = "token ids" if arch in TEXT_MODELS else "images or feature vectors"
                choices = sorted(TEXT_MODELS) if modality == "text" else sorted(set(MODELS) - set(TEXT_MODELS))
                raise ValueError(
                    f"{role}_arch={arch} reads {reads} but stream {self.stream!r} holds {modality}s; "
                    f"pick one of {choices}"
                )
        return self.model_copy(update=update)

    @property
    def registered_name(self) -> str:
        return f"kdflow-{self.stream}-lifelong"

    def strategy_options(self) -> dict:
        from pipelines.lifelong.strategies import strategy_options

        options = strategy_options(
            self.strategy,
            buffer_size=self.buffer_size,
            alpha=self.alpha,
            beta=self.beta,
            replay_batch_size=self.replay_batch_size,
            temperature=self.temperature,
        )
        return {**options, "seed": self.seed}

    def model_options(self, role: str) -> dict:
        arch = getattr(self, f"{role}_arch")
        options = {"width": getattr(self, f"{role}_width")}
        if arch == "mlp":
            options["depth"] = getattr(self, f"{role}_depth")
        return options

    def digest(self) -> str:
        """What decides the outcome of a retraining, minus the gate (a new tolerance may re-decide)."""
        fields = self.model_dump(exclude={"tolerance", "tracking_uri", "store_dir"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
