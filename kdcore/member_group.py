"""The training loop's view of K students trained as one stacked group (kdcore.train.fit given a list of models).

Each member keeps its own learning rate, weight decay and method weights, its own best epoch and its own
early stop. A member leaves the group when its epoch callback raises (a pruned trial), when its loss is not
finite (a too-large learning rate), or when it stops early; the others go on exactly as they were, and at the
end every member's own nn.Module holds its kept weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.base import Batch, Distiller
from kdcore.distill.members import MemberLosses
from kdcore.forward_mode import ForwardMode
from kdcore.member_optim import MemberOptimizer
from kdcore.stacked import StackedModels


class MemberGroup:
    drops_failures = True  # a member's error ends that member only
    needs_features = False  # logit methods only (MemberLosses refuses the others)

    def __init__(
        self,
        models: list[nn.Module],
        lrs: list[float],
        weight_decays: list[float],
        distillers: list[Distiller],
        optimizer: str,
        nesterov: bool,
        shared: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
        device: torch.device,
        sample: torch.Tensor,
    ):
        """`shared`: the one-parameter optimiser at lr 1 and torch's scheduler on it (kdcore/member_optim.py);
        `sample`: a few model-ready inputs, to check the grouped forward (kdcore/stacked.py)."""
        self.models = models
        self.losses = MemberLosses(distillers).to(device)  # first: refuses feature methods before any copy
        self.stacked = StackedModels(models, sample).to(device)
        self.optimizer = MemberOptimizer(
            optimizer,
            torch.tensor(lrs, device=device),
            torch.tensor(weight_decays, device=device),
            self.stacked.member_of_element(),
            shared[0],
            nesterov,
        )
        self.schedule = shared[1]
        self.members = list(range(len(models)))  # the member at each position of the stack
        self.best: dict[int, tuple[int, float, dict]] = {}  # member -> (epoch, val/acc, state)
        self.last: dict[int, dict] = {}  # member -> its state when it left the group

    def start_epoch(self, epoch: int) -> None:
        self.stacked.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stacked(x)

    def loss_terms(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return self.losses(logits, batch)

    def step(self, loss: torch.Tensor) -> None:
        self.stacked.zero_grad()
        loss.sum().backward()  # the members' parameters are disjoint: each one's gradient is its own loss's
        self.optimizer.step(self.stacked.flat, self.stacked.grad)
        self.schedule.step()

    def after_step(self, batch: Batch, logits: torch.Tensor) -> None:
        pass

    @torch.no_grad()
    def evaluate(
        self, split: Split, batch_size: int, transform: Callable[[torch.Tensor], torch.Tensor], mode: ForwardMode
    ) -> list[dict[str, float]]:
        """val/loss and val/acc of each member, in one sync (kdcore.evaluate's measures, per member)."""
        was_training = self.stacked.training
        self.stacked.train(False)
        device = self.stacked.flat.device
        with mode.context(device):
            chunks = [
                self.stacked(mode.inputs(transform(split.x[i : i + batch_size].to(device)))).float()
                for i in range(0, len(split), batch_size)
            ]
        self.stacked.train(was_training)
        logits = torch.cat(chunks, dim=1)  # [K, N, C]
        y = split.y.to(device)
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(logits)), reduction="none").view(len(logits), -1)
        acc = (logits.argmax(-1) == y).float().mean(1)
        return [{"loss": a, "acc": b} for a, b in torch.stack([loss.mean(1), acc], 1).tolist()]

    def offer(self, member: int, epoch: int, acc: float) -> None:
        """As kdcore.train.BestEpoch: a later epoch must be strictly better."""
        if acc > self.best.get(member, (0, float("-inf")))[1]:
            self.best[member] = (epoch, acc, self.stacked.member_state(self.members.index(member)))

    def best_epoch(self, member: int) -> int:
        return self.best.get(member, (0,))[0]

    def drop(self, members: set[int]) -> None:
        """The members in `members` leave the group; the others' parameters and optimiser state are untouched."""
        if not members:
            return
        for member in members:
            self.last[member] = self.stacked.member_state(self.members.index(member))
        keep = [i for i, member in enumerate(self.members) if member not in members]
        keep_index = torch.tensor(keep, dtype=torch.long, device=self.stacked.flat.device)
        self.optimizer.select(keep_index, self.stacked.select_flat)  # in the old layout
        self.stacked.select(keep_index)
        self.optimizer.spread(self.stacked.member_of_element())
        self.losses.select(keep_index)
        self.members = [self.members[i] for i in keep]

    def finish(self, histories: list, has_val: bool) -> None:
        """Every member's model loads its kept weights: the best validation epoch's, else the last."""
        for position, member in enumerate(self.members):
            self.last[member] = self.stacked.member_state(position)
        for member, model in enumerate(self.models):
            if has_val and member in self.best:
                epoch, _, state = self.best[member]
                histories[member].kept_epoch = epoch
            else:
                state = self.last[member]
            model.load_state_dict(state)
