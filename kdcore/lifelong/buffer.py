"""A reservoir replay buffer of inputs, labels and the logits the model gave them
(Vitter 1985; DER, Buzzega et al. 2020).

The random choices (which slot an example takes, which rows a replay reads) are drawn on the host from the
buffer's own generator, ahead of the writes and reads that follow them; the rows themselves live on the
model's device. So a training step never waits for the device to tell the host anything.
"""

from __future__ import annotations

import torch


class ReservoirBuffer:
    """Every example seen so far has the same chance, capacity / seen, of being in the buffer.

    Logits are kept at the width the head had when they were stored; `logit_width` says how many
    columns of each row are real, so replay after the head grew compares only those columns.
    Storage has one row more than the capacity: the row where examples the reservoir does not keep are written.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.capacity, self.seen, self.filled = capacity, 0, 0
        self._x: torch.Tensor | None = None
        self._y = torch.empty(0, dtype=torch.long)
        self._logits = torch.empty(0, 0)
        self._logit_width = torch.empty(0, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def x(self) -> torch.Tensor | None:
        return None if self._x is None else self._x[: self.filled]

    @property
    def y(self) -> torch.Tensor:
        return self._y[: self.filled]

    @property
    def logits(self) -> torch.Tensor:
        return self._logits[: self.filled]

    @property
    def logit_width(self) -> torch.Tensor:
        return self._logit_width[: self.filled]

    def __len__(self) -> int:
        return self.filled

    @property
    def discard(self) -> int:
        return self.capacity

    def slots(self, n: int) -> list[int]:
        """The reservoir's slot for each of the next `n` examples (`discard` if not kept); counts them as seen."""
        out = []
        for _ in range(n):
            if self.filled < self.capacity:
                slot, self.filled = self.filled, self.filled + 1
            else:
                slot = int(torch.randint(0, self.seen + 1, (1,), generator=self.generator))
                slot = slot if slot < self.capacity else self.discard
            self.seen += 1
            out.append(slot)
        # one write per slot: within a batch, the later example takes a slot both drew (as if added one by one)
        last = {s: k for k, s in enumerate(out)}
        return [s if s == self.discard or last[s] == k else self.discard for k, s in enumerate(out)]

    def draw(self, size: int) -> list[int]:
        """`size` distinct stored rows at random (fewer if fewer are stored)."""
        return torch.randperm(self.filled, generator=self.generator)[: min(size, self.filled)].tolist()

    def write(self, slots: torch.Tensor, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> None:
        """Store example k in row slots[k] (a tensor on the rows' device, from `slots`)."""
        x, y, logits = x.detach(), y.detach(), logits.detach().float()
        if self._x is None:
            self._x = x.new_zeros((self.capacity + 1, *x.shape[1:]))
            self._y = y.new_zeros(self.capacity + 1)
            self._logits = logits.new_zeros((self.capacity + 1, 0))
            self._logit_width = torch.zeros(self.capacity + 1, dtype=torch.long, device=x.device)
        if logits.shape[1] > self._logits.shape[1]:
            pad = self._logits.new_zeros((len(self._logits), logits.shape[1] - self._logits.shape[1]))
            self._logits = torch.cat([self._logits, pad], dim=1)
        row = logits
        if logits.shape[1] < self._logits.shape[1]:  # stored before the head grew: pad the missing columns with 0
            row = self._logits.new_zeros((len(y), self._logits.shape[1]))
            row[:, : logits.shape[1]] = logits
        self._x.index_copy_(0, slots, x.to(self._x.dtype))
        self._y.index_copy_(0, slots, y)
        self._logits.index_copy_(0, slots, row)
        self._logit_width.index_copy_(0, slots, torch.full_like(slots, logits.shape[1]))

    def set_logits(self, pick: torch.Tensor, logits: torch.Tensor, width: torch.Tensor) -> None:
        """Replace the stored logits of rows `pick` (at the buffer's width) and how many of their columns are real."""
        self._logits.index_copy_(0, pick, logits.detach().float())
        self._logit_width.index_copy_(0, pick, width)

    def hold(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, width: torch.Tensor) -> None:
        """Hold exactly these rows, chosen by a policy other than the reservoir's (`seen` is left as it is)."""
        if len(y) > self.capacity:
            raise ValueError(f"{len(y)} rows do not fit a buffer of {self.capacity}")
        pad = self.capacity + 1 - len(y)
        self._x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
        self._y = torch.cat([y, y.new_zeros(pad)])
        self._logits = torch.cat([logits.float(), logits.new_zeros((pad, logits.shape[1])).float()])
        self._logit_width = torch.cat([width, width.new_zeros(pad)])
        self.filled = len(y)

    def add(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> None:
        """Offer examples to the reservoir now (outside training: seeding the buffer from learned data)."""
        device = x.device if self._x is None else self._x.device
        self.write(torch.tensor(self.slots(len(y)), device=device), x.to(device), y.to(device), logits.to(device))

    @property
    def columns(self) -> int:
        """Logit columns each row has room for (the widest head seen)."""
        return self._logits.shape[1]

    def all_full_width(self) -> bool:
        """Every stored row's logits fill all the columns (reads the widths on the host)."""
        return bool((self.logit_width == self.columns).all())

    def examples(self, pick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the stored rows `pick`."""
        return self._x[pick], self._y[pick]

    def rows(self, pick: torch.Tensor, masked: bool = True):
        """(x, y, logits, mask) of the stored rows `pick`; mask marks the real logit columns (None unless
        `masked`)."""
        logits = self._logits[pick]
        mask = None
        if masked:
            mask = torch.arange(logits.shape[1], device=logits.device)[None, :] < self._logit_width[pick][:, None]
        return (*self.examples(pick), logits, mask)

    def sample(self, size: int, device: torch.device | str = "cpu"):
        """(x, y, logits, mask) of `size` random stored examples, on `device`."""
        pick = torch.tensor(self.draw(size), dtype=torch.long, device=self._x.device)
        return tuple(t.to(device) for t in self.rows(pick))

    def to(self, device: torch.device | str) -> ReservoirBuffer:
        if self._x is not None:
            self._x, self._y = self._x.to(device), self._y.to(device)
            self._logits, self._logit_width = self._logits.to(device), self._logit_width.to(device)
        return self

    def state_dict(self) -> dict:
        """Tensors and ints only, so it loads with torch.load(weights_only=True)."""
        n = self.filled
        return {
            "capacity": self.capacity,
            "seen": self.seen,
            "x": None if self._x is None else self._x[:n].cpu(),
            "y": self._y[:n].cpu(),
            "logits": self._logits[:n].cpu(),
            "logit_width": self._logit_width[:n].cpu(),
            "rng": self.generator.get_state(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> ReservoirBuffer:
        buffer = cls(state["capacity"])
        buffer.seen, buffer.filled = state["seen"], len(state["y"])
        if state["x"] is not None and buffer.filled:
            pad = buffer.capacity + 1 - buffer.filled
            buffer._x = torch.cat([state["x"], state["x"].new_zeros((pad, *state["x"].shape[1:]))])
            buffer._y = torch.cat([state["y"], state["y"].new_zeros(pad)])
            buffer._logits = torch.cat([state["logits"], state["logits"].new_zeros((pad, state["logits"].shape[1]))])
            buffer._logit_width = torch.cat([state["logit_width"], state["logit_width"].new_zeros(pad)])
        buffer.generator.set_state(state["rng"])
        return buffer
