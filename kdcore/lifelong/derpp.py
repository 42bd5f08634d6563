"""DER++ (Buzzega et al. 2020): replay stored logits (MSE) and labels (CE) from a reservoir buffer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcore.forward_mode import ForwardMode
from kdcore.lifelong.base import Strategy
from kdcore.lifelong.buffer import ReservoirBuffer
from kdcore.lifelong.registry import register_strategy
from kdcore.options import option


@dataclass(frozen=True)
class DERppOptions:
    """DER++ (Buzzega et al. 2020): replays stored logits and labels from a reservoir buffer; the X-DER options
    (Boschini et al. 2022) are off by default."""

    buffer_size: int = option(
        200, "Replay buffer capacity (examples), filled by reservoir sampling.", ge=1, le=1_000_000
    )
    logit_weight: float = option(
        0.2, "The paper's alpha: weight of the MSE between replayed examples' logits now and when stored.", ge=0, le=100
    )
    label_weight: float = option(
        1.0, "The paper's beta: weight of the CE on a second draw of replayed examples' labels.", ge=0, le=100
    )
    replay_batch_size: int = option(32, "Examples in each of the two replay draws per step.", ge=1, le=65_536)
    asymmetric_ce: bool = option(
        False,
        # ER-ACE (Caccia et al. 2022): learning new classes then does not push the old ones' logits down
        "ER-ACE: the new batch's CE counts only the classes present in it (replaces the loop's own CE).",
    )
    mask_future_logits: bool = option(
        False,
        # the logits a stored example got for classes not seen yet are untrained noise: replay leaves them free
        "X-DER: store only the logits of the classes seen so far (labels arrive in index order).",
    )
    refresh_task_logits: bool = option(
        False,
        # X-DER stores a task's examples at its end, not with the half-trained model's logits that met them mid-task
        "X-DER: when a task ends, its stored rows take the logits of the model that finished it.",
    )
    transplant_gamma: float | None = option(
        None,
        # so replay never teaches that an old example looks more like a new class than its own
        "X-DER: when a task ends, earlier rows take the finished model's logits on the new classes, scaled down where "
        "their largest exceeds gamma times the row's true-class logit (paper: 0.85); empty: off.",
        gt=0,
        le=1,
    )
    margin: float | None = option(
        None,
        "X-DER's margins: the new classes' top probability beats the old classes' by this, and the classes not seen "
        "yet stay this far below a row's own (paper: 0.3); empty: off.",
        gt=0,
        le=1,
    )
    margin_weight: float = option(0.1, "The paper's eta: weight of the margin terms.", ge=0, le=100)
    fill_at_task_end: bool = option(
        False,
        "X-DER's buffer policy: nothing is stored during a task; when it ends each class seen keeps an equal share "
        "and the task's classes fill the room left, with the finished model's logits.",
    )


# The paper's best values for Seq-MNIST (Buzzega et al. 2020, appendix; mammoth's best_args), by buffer size.
BEST = {
    200: {"logit_weight": 0.2, "label_weight": 1.0, "replay_batch_size": 128},
    500: {"logit_weight": 1.0, "label_weight": 0.5, "replay_batch_size": 10},
}


def derpp_terms(
    logits_now: torch.Tensor,
    stored_logits: torch.Tensor,
    mask: torch.Tensor | None,
    label_logits: torch.Tensor,
    labels: torch.Tensor,
    o: DERppOptions,
) -> dict[str, torch.Tensor]:
    """logit_weight * mean squared error over the stored (masked) columns + label_weight * CE on the labels;
    mask None: every stored column is real (the same sum in the same order, so the same bits, without the mask)."""
    squared = (logits_now[:, : stored_logits.shape[1]] - stored_logits) ** 2
    mse = squared.sum() / squared.numel() if mask is None else (squared * mask).sum() / mask.sum()
    return {"replay_mse": o.logit_weight * mse, "replay_ce": o.label_weight * F.cross_entropy(label_logits, labels)}


def asymmetric_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE over the classes present in the batch only (the others' logits are left out of the softmax)."""
    present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device).index_fill_(0, labels, True)
    return F.cross_entropy(logits.masked_fill(~present, float("-inf")), labels)


def transplant_logits(
    stored: torch.Tensor, now: torch.Tensor, labels: torch.Tensor, columns: torch.Tensor, gamma: float
) -> torch.Tensor:
    """`stored` with its `columns` replaced by `now`'s, each row's new part times gamma * stored[true class] / its
    max where that max exceeds the stored true-class logit (X-DER's past update)."""
    true = stored.gather(1, labels[:, None])
    part = now[:, columns]
    top = part.max(1, keepdim=True).values
    part = part * torch.where(top > true, gamma * true / top, torch.ones_like(top))
    return stored.index_copy(1, columns, part)


def broken_mean(violation: torch.Tensor) -> torch.Tensor:
    """Mean of the positive entries (0 if none), without asking the host how many there are."""
    return violation.clamp(min=0).sum() / (violation > 0).sum().clamp(min=1)


def margin_terms(
    logits: torch.Tensor,
    replayed: torch.Tensor,
    replayed_labels: torch.Tensor,
    first: int,
    known: int,
    o: DERppOptions,
) -> dict[str, torch.Tensor]:
    """X-DER's constraints: classes [0, first) are past, [first, known) the task's, [known, ...) the future."""
    cols = torch.arange(logits.shape[1], device=logits.device)
    past, present, future = cols < first, (cols >= first) & (cols < known), cols >= known
    p = F.softmax(logits.masked_fill(~(past | present), float("-inf")), dim=1)
    worst_past = p.masked_fill(~past, -1.0).max(1).values.detach()  # -1: no past class, never broken
    past_term = broken_mean(worst_past + o.margin - p.masked_fill(~present, -1.0).max(1).values)
    own = torch.cat(
        [logits.masked_fill(~present, float("-inf")).max(1).values, replayed.gather(1, replayed_labels[:, None])[:, 0]]
    )
    top_future = torch.cat([logits, replayed]).masked_fill(~future, float("-inf")).max(1).values
    future_term = broken_mean(top_future + o.margin - own) if known < logits.shape[1] else logits.new_zeros(())
    return {"past_margin": o.margin_weight * past_term, "future_margin": o.margin_weight * future_term}


@dataclass(frozen=True)
class ReplayStep:
    """One step's draws: rows for the logits term and for the labels term (None: empty buffer), slots to write."""

    logit_rows: torch.Tensor | None
    label_rows: torch.Tensor | None
    slots: torch.Tensor


@register_strategy("derpp")
class DERpp(Strategy):
    name = "derpp"
    Options = DERppOptions

    def __init__(self, options=None, seed: int = 0):
        super().__init__(options, seed)
        self.buffer = ReservoirBuffer(self.options.buffer_size, seed)
        self.plan: list[ReplayStep] = []
        self.step = 0
        self.known_classes = 0  # 1 + the largest label trained on so far
        self.task_classes: torch.Tensor | None = None  # the labels of the task being learned
        self.first_class = 0  # the smallest of them
        self.task_data = None  # the task's examples, for fill_at_task_end
        self.earlier_rows_width: int | None = None  # set per task: when replay may skip the column mask

    def before_task(self, model, train, settings):
        """Draw the whole task's replay and reservoir choices now, in the order the steps use them, and send
        them to the device at once: no step then moves an index between host and device."""
        device = next(model.parameters()).device
        self.buffer.to(device)
        # replay needs no column mask while every stored row is as wide as this task's logits: so when the rows stored
        # before it share one width (read on the host, once per task) equal to the head's, as rows written in it do
        uniform = not self.options.mask_future_logits and self.buffer.all_full_width()
        self.earlier_rows_width = (self.buffer.columns if len(self.buffer) else 0) if uniform else None  # 0: none
        if self.options.mask_future_logits or self.options.margin is not None:  # host reads, once per task
            self.known_classes = max(self.known_classes, int(train.y.max()) + 1)
            self.first_class = int(train.y.min())
        if self.options.refresh_task_logits or self.options.transplant_gamma is not None:
            self.task_classes = torch.unique(train.y).to(device)
        self.task_data = train if self.options.fill_at_task_end else None
        n, size = len(train), settings.batch_size
        batches = [min(size, n - start) for start in range(0, n, size)] * settings.epochs
        flat, spans, self.counts = [], [], []
        for b in batches:
            draws = [self.buffer.draw(self.options.replay_batch_size) for _ in range(2)] if len(self.buffer) else []
            spans.append([len(flat) + sum(map(len, draws[:k])) for k in range(len(draws) + 1)])
            for d in draws:
                flat += d
            if self.options.fill_at_task_end:
                slots = [self.buffer.discard] * b
            else:
                slots = self.buffer.slots(b)
            spans[-1].append(spans[-1][-1] + b)
            flat += slots
            self.counts.append((self.buffer.seen, self.buffer.filled))
        rows = torch.tensor(flat, dtype=torch.long, device=device)
        self.plan = [
            ReplayStep(rows[s[0] : s[1]], rows[s[1] : s[2]], rows[s[2] : s[3]])
            if len(s) == 4
            else ReplayStep(None, None, rows[s[0] : s[1]])
            for s in spans
        ]
        self.step = 0
        return train

    def loss_terms(self, model, logits, batch):
        current = {"ce": asymmetric_ce(logits, batch.y)} if self.options.asymmetric_ce else {}
        step = self.plan[self.step]
        if step.logit_rows is None:  # the very first step: nothing stored yet (zeros keep the terms' names)
            zero = logits.new_zeros(())
            nothing = logits.new_zeros((0, logits.shape[1])), batch.y[:0]
            return {**current, "replay_mse": zero, "replay_ce": zero, **self.margins(logits, *nothing)}
        full = self.earlier_rows_width in (0, logits.shape[1])
        bx, by, stored, mask = self.buffer.rows(step.logit_rows, masked=not full)
        lx, ly = self.buffer.examples(step.label_rows)
        with ForwardMode(batch.autocast).context(batch.x.device):
            now, label_logits = model(bx).float(), model(lx).float()
        terms = derpp_terms(now, stored, mask, label_logits, ly, self.options)
        if self.options.margin is None:
            return {**current, **terms}
        replayed = torch.cat([now, label_logits]), torch.cat([by, ly])
        return {**current, **terms, **self.margins(logits, *replayed)}

    def margins(self, logits, replayed, labels):
        if self.options.margin is None:
            return {}
        return margin_terms(logits, replayed, labels, self.first_class, self.known_classes, self.options)

    def after_step(self, batch, logits):
        if self.options.mask_future_logits:
            logits = logits[:, : self.known_classes]
        self.buffer.write(self.plan[self.step].slots, batch.x, batch.y, logits)
        self.step += 1

    def after_task(self, model):
        super().after_task(model)
        if 0 < self.step < len(self.plan):  # training stopped early: count only the examples that were offered
            self.buffer.seen, self.buffer.filled = self.counts[self.step - 1]
        self.plan = []
        if self.task_data is not None:
            self.fill_balanced(model)
        if (self.options.refresh_task_logits or self.options.transplant_gamma is not None) and len(self.buffer):
            self.update_stored_logits(model)

    @torch.no_grad()
    def update_stored_logits(self, model) -> None:
        """X-DER's end-of-task update: one pass of the finished model over the buffer, no host read."""
        o = self.options
        pick = torch.arange(len(self.buffer), device=self.buffer.y.device)
        x, y, stored, mask = self.buffer.rows(pick)
        training = model.training
        model.eval()
        now = model(x).float()[:, : stored.shape[1]]
        model.train(training)
        present = torch.isin(y, self.task_classes)[:, None]
        new, changed = stored, torch.zeros_like(present)
        if o.refresh_task_logits:
            new, changed = torch.where(present, now, new), present
        if o.transplant_gamma is not None:
            moved = transplant_logits(stored, now, y, self.task_classes, o.transplant_gamma)
            new, changed = torch.where(present, new, moved), torch.ones_like(present)
        width = torch.where(changed[:, 0], stored.shape[1], mask.sum(1))
        self.buffer.set_logits(pick, new, width)

    @torch.no_grad()
    def fill_balanced(self, model) -> None:
        """X-DER's end-of-task buffer: an equal share per class seen; host reads here, once per task."""
        train, self.task_data = self.task_data, None
        kept, y_old = [], self.buffer.y.tolist()
        # the buffer holds every class seen before (its share), so a strategy loaded from a checkpoint counts them too
        new_classes = sorted(set(torch.unique(train.y).tolist()) - set(y_old))
        share = self.buffer.capacity // len(set(y_old) | set(new_classes))
        for c in sorted(set(y_old)):
            kept += [i for i, label in enumerate(y_old) if label == c][:share]
        room = self.buffer.capacity - len(kept)
        counts = [room // len(new_classes)] * len(new_classes)
        for k in torch.randperm(len(new_classes), generator=self.buffer.generator)[: room % len(new_classes)].tolist():
            counts[k] += 1
        pick = []
        for c, k in zip(new_classes, counts):
            rows = torch.nonzero(train.y == c)[:, 0]
            pick.append(rows[torch.randperm(len(rows), generator=self.buffer.generator)[:k]])
        pick = torch.cat(pick)
        device = next(model.parameters()).device
        x, y = train.x[pick].to(device), train.y[pick].to(device)
        training = model.training
        model.eval()
        logits = model(x).float()
        model.train(training)
        if self.options.mask_future_logits:
            logits = logits[:, : self.known_classes]
        old = torch.tensor(kept, dtype=torch.long, device=device)
        if len(self.buffer):
            ox, oy, ol, om = self.buffer.rows(old)
            width = max(ol.shape[1], logits.shape[1])
            ol, logits = F.pad(ol, (0, width - ol.shape[1])), F.pad(logits, (0, width - logits.shape[1]))
            x, y, logits = torch.cat([ox, x.to(ox.dtype)]), torch.cat([oy, y]), torch.cat([ol, logits])
            widths = torch.cat([om.sum(1), torch.full_like(y[len(oy) :], logits.shape[1])])
        else:
            widths = torch.full_like(y, logits.shape[1])
        self.buffer.hold(x, y, logits, widths)

    def state_dict(self):
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.buffer = ReservoirBuffer.from_state_dict(state["buffer"])
