"""A reservoir replay buffer of inputs, labels and the logits the model gave them
(Vitter 1985; DER, Buzzega et al. 2020)."""

from __future__ import annotations

import torch


class ReservoirBuffer:
    """Every example seen so far has the same chance, capacity / seen, of being in the buffer.

    Logits are kept at the width the head had when they were stored; `logit_width` says how many
    columns of each row are real, so replay after the head grew compares only those columns.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.capacity, self.seen = capacity, 0
        self.x: torch.Tensor | None = None
        self.y = torch.empty(0, dtype=torch.long)
        self.logits = torch.empty(0, 0)
        self.logit_width = torch.empty(0, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.y)

    def add(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> None:
        x, y, logits = x.detach().cpu(), y.detach().cpu(), logits.detach().cpu().float()
        self._widen(logits.shape[1])
        for k in range(len(y)):
            if len(self) < self.capacity:
                slot = len(self)
                self._append(x[k], y[k], logits[k])
            else:
                slot = int(torch.randint(0, self.seen + 1, (1,), generator=self.generator))
                if slot < self.capacity:
                    self.x[slot], self.y[slot] = x[k], y[k]
                    self.logits[slot] = 0
                    self.logits[slot, : logits.shape[1]] = logits[k]
                    self.logit_width[slot] = logits.shape[1]
            self.seen += 1

    def sample(self, size: int, device: torch.device | str = "cpu"):
        """(x, y, logits, mask) of `size` random stored examples; mask marks the real logit columns."""
        pick = torch.randperm(len(self), generator=self.generator)[: min(size, len(self))]
        logits = self.logits[pick]
        mask = torch.arange(logits.shape[1])[None, :] < self.logit_width[pick][:, None]
        return self.x[pick].to(device), self.y[pick].to(device), logits.to(device), mask.to(device)

    def _widen(self, width: int) -> None:
        if width > self.logits.shape[1]:
            pad = torch.zeros(len(self), width - self.logits.shape[1])
            self.logits = torch.cat([self.logits, pad], dim=1)

    def _append(self, x, y, logits) -> None:
        row = torch.zeros(1, self.logits.shape[1])
        row[0, : len(logits)] = logits
        self.x = x[None].clone() if self.x is None else torch.cat([self.x, x[None]])
        self.y = torch.cat([self.y, y.view(1)])
        self.logits = torch.cat([self.logits, row])
        self.logit_width = torch.cat([self.logit_width, torch.tensor([len(logits)])])

    def state_dict(self) -> dict:
        """Tensors and ints only, so it loads with torch.load(weights_only=True)."""
        return {
            "capacity": self.capacity,
            "seen": self.seen,
            "x": self.x,
            "y": self.y,
            "logits": self.logits,
            "logit_width": self.logit_width,
            "rng": self.generator.get_state(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> ReservoirBuffer:
        buffer = cls(state["capacity"])
        buffer.seen, buffer.x, buffer.y = state["seen"], state["x"], state["y"]
        buffer.logits, buffer.logit_width = state["logits"], state["logit_width"]
        buffer.generator.set_state(state["rng"])
        return buffer
