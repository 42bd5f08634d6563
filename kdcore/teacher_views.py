"""Consistent teacher views: the teacher's logits on K augmented views of every training sample, with the
random choices that made each view, so the student can be fed exactly those views later.

Teacher and student must see the same view (Beyer et al. 2022, "Knowledge distillation: a good teacher is
patient and consistent"): cached logits of the plain image are wrong targets for a cropped, flipped one.
Storing K views per sample turns the teacher's cost from one forward per batch of every epoch of every
trial into K forwards per sample, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from kdcore.data.view import InputView, ViewParams


@dataclass
class TeacherViews:
    view: InputView  # the augmentation the views were drawn from; replaying needs the same one
    params: ViewParams  # (K, N): view k of sample i
    logits: torch.Tensor  # (K, N, C): the teacher's output on view k of sample i

    @property
    def k(self) -> int:
        return self.logits.shape[0]

    def __len__(self) -> int:
        return self.logits.shape[1]

    @classmethod
    @torch.no_grad()
    def build(
        cls, teacher: nn.Module, x: torch.Tensor, view: InputView, k: int, seed: int = 0, batch_size: int = 1024
    ) -> TeacherViews:
        """Run the teacher (eval mode, no gradients, on its own device) over K seeded views of the stored images `x`."""
        if k < 1:
            raise ValueError(f"teacher views: need k >= 1 views per sample, got {k}")
        generator = torch.Generator().manual_seed(seed)  # CPU draws: the same views on any device
        params = ViewParams.stack([view.sample_params(len(x), generator) for _ in range(k)])
        was_training = teacher.training
        teacher.eval()
        device = next(teacher.parameters()).device
        logits = torch.stack(
            [
                torch.cat(
                    [
                        teacher(view.apply(x[i : i + batch_size].to(device), params[j, i : i + batch_size]))
                        .float()
                        .cpu()
                        for i in range(0, len(x), batch_size)
                    ]
                )
                for j in range(k)
            ]
        )
        teacher.train(was_training)
        return cls(view, params, logits)

    def extend(self, more: TeacherViews) -> TeacherViews:
        """These samples' views followed by `more`'s: the same augmentation and K, more samples."""
        if more.view != self.view or more.k != self.k:
            raise ValueError(
                f"teacher views: cannot join {more.k} views under {more.view} to {self.k} under {self.view}"
            )
        params = ViewParams(
            *(torch.cat([getattr(self.params, f), getattr(more.params, f)], 1) for f in ("dy", "dx", "flip"))
        )
        return TeacherViews(self.view, params, torch.cat([self.logits, more.logits], 1))

    def choose(self, generator: torch.Generator) -> torch.Tensor:
        """Which cached view each sample replays this epoch: uniform over the K, on the generator's device."""
        return torch.randint(0, self.k, (len(self),), generator=generator, device=generator.device)

    def replay(self, x: torch.Tensor, index: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's inputs for stored images `x[index]` under this epoch's `choice`, and the teacher's
        logits on them."""
        k = choice[index]
        return self.view.apply(x[index], self.params[k, index]), self.logits[k, index]

    def to(self, device) -> TeacherViews:
        return TeacherViews(self.view, self.params.to(device), self.logits.to(device))

    def state_dict(self) -> dict:
        """Plain tensors and primitives only, so it loads with torch.load(weights_only=True)."""
        return {"view": self.view.state_dict(), "params": self.params.state_dict(), "logits": self.logits}

    @classmethod
    def from_state_dict(cls, state: dict) -> TeacherViews:
        return cls(InputView.from_state_dict(state["view"]), ViewParams(**state["params"]), state["logits"])

    @classmethod
    def load(cls, path: str | Path) -> TeacherViews:
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))
