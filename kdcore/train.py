"""One training loop for every model and every distiller: in-memory tensors, no DataLoader."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import reduce

import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.data.view import InputView
from kdcore.distill.base import Batch, Distiller
from kdcore.distill.members import MemberLosses
from kdcore.evaluate import evaluate
from kdcore.forward_mode import ForwardMode, forward_mode
from kdcore.lifelong.base import Strategy
from kdcore.member_group import MemberGroup
from kdcore.soft_targets import SoftTargets

EpochCallback = Callable[[int, dict[str, float]], None]
NORMALISE_ONCE_BYTES = 1 << 30  # a float32 copy of an un-augmented train split up to this size is made once per fit


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd"
    momentum: float = 0.9
    schedule: str = (
        "onecycle"  # "onecycle" | "step" (x0.1 at 5/8, 6/8 and 7/8 of training, as in CRD's recipe) | "constant"
    )
    seed: int = 0
    device: str = "cpu"
    precision: str = (
        "auto"  # "auto" (bf16 autocast on CUDA with native bf16, else fp32) | "fp32" | "bf16"; losses stay fp32
    )
    channels_last: bool | str = "auto"  # NHWC model and image batches; "auto": on for 4-D inputs on CUDA
    compile: bool = (
        False  # torch.compile the model for training: compiling costs tens of seconds, so only long runs gain
    )
    early_stop_patience: int | None = None  # stop once val/acc has not improved for this many epochs; None: never
    # fine-tuning pretrained weights: every layer but the head (the last nn.Linear) learns at lr * this factor,
    backbone_lr_factor: float = 1.0
    freeze_backbone_epochs: int = 0  # and, for this many first epochs, not at all (only the head learns)

    @property
    def splits_backbone(self) -> bool:
        return self.backbone_lr_factor != 1.0 or self.freeze_backbone_epochs > 0


class History(list):
    """Per-epoch metrics (a list, as before), plus the epoch whose weights the model holds after `fit`."""

    def __init__(self, epochs=(), kept_epoch: int = 0):
        super().__init__(epochs)
        self.kept_epoch = kept_epoch
        self.dropped_by: Exception | None = None  # stacked members: what made this one leave its group early

    @property
    def kept(self) -> dict[str, float]:
        """The metrics of the kept epoch."""
        return self[self.kept_epoch - 1]


def make_optimizer(params, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        nesterov = s.momentum > 0  # plain SGD (momentum 0) is the lifelong protocols' optimiser
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=nesterov)
    if s.optimizer == "adam":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}; choose 'adam' or 'sgd'")


def param_groups(model: nn.Module, distiller: Distiller, s: TrainSettings) -> tuple[list, list[nn.Parameter]]:
    """The optimiser's parameter groups, and the backbone's parameters (empty unless the settings split them)."""
    params = list(model.parameters()) + list(distiller.parameters())
    if not s.splits_backbone:
        return params, []
    from kdcore.models.pretrained import head_name

    head = head_name(model) + "."
    backbone = [p for name, p in model.named_parameters() if not name.startswith(head)]
    ids = {id(p) for p in backbone}
    rest = [p for p in params if id(p) not in ids]
    return [{"params": backbone, "lr": s.lr * s.backbone_lr_factor}, {"params": rest, "lr": s.lr}], backbone


def make_schedule(optimizer: torch.optim.Optimizer, s: TrainSettings, steps_per_epoch: int):
    """Stepped once per batch."""
    if s.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],  # each group's own peak (backbone, head)
            total_steps=s.epochs * steps_per_epoch,
            pct_start=0.15,
        )
    if s.schedule == "step":
        milestones = [round(s.epochs * k / 8) * steps_per_epoch for k in (5, 6, 7)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if s.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ValueError(f"unknown schedule {s.schedule!r}; choose 'onecycle', 'step' or 'constant'")


def fit(
    model: nn.Module | list[nn.Module],
    train: Split,
    val: Split | None,
    settings: TrainSettings | list[TrainSettings],
    distiller: Distiller | list[Distiller],
    *,
    soft_targets: SoftTargets = SoftTargets(),
    on_epoch: EpochCallback | list[EpochCallback | None] | None = None,
    view: InputView | None = None,
    strategy: Strategy | None = None,
) -> History | list[History]:
    """Train `model` to minimise the distiller's loss terms; return per-epoch metrics.

    With `val`, the model ends holding the weights of its best validation epoch (highest val/acc; the history's
    `kept_epoch`), and training stops early once val/acc has not improved for `settings.early_stop_patience`
    epochs. Without `val`, it keeps the last epoch's weights.

    `soft_targets` says where the teacher's soft targets come from (kdcore/soft_targets.py): none, logits cached
    for `train.x`, cached consistent views replayed to the student (each epoch every sample replays one of its K
    views; the soft targets are the teacher's stored logits on it), or the teacher run online on each training
    batch exactly as the student sees it (the only correct targets under augmentation without cached views).
    Feature methods always run the teacher online, for its features; only the logits may be cached.
    `val` gives the per-epoch val/* metrics; None when every labelled sample is in `train` (a final refit).
    `on_epoch(epoch, metrics)` may raise (e.g. to prune a trial): the exception propagates.
    `view` turns stored splits into inputs (augmented in training, if it says so); default: use them as they are.
    `strategy` (kdcore/lifelong) makes this call one task of a lifelong stream: its hooks run before the task (it
    may change the data to train on), on each batch (its anti-forgetting terms join the distiller's), after each
    step and after the task; a strategy's term named as one of the distiller's replaces it (ER-ACE's CE).

    Members: lists of K models (one architecture), K settings (differing only in lr and weight_decay), K logit
    distillers (one method, differing only in its `member_params`) and K callbacks train the K models as one
    stacked group (kdcore/member_group.py) on the same batches, in the same order as K calls would: one forward
    and backward for all. One History per member comes back; a member whose callback raises, or whose loss is
    not finite, leaves the group (the exception is its history's `dropped_by`) and the others go on unchanged.
    """
    view = view or InputView()
    members = isinstance(model, list)
    first = distiller[0] if members else distiller
    shared = shared_settings(settings, distiller, on_epoch, model, strategy) if members else settings
    soft_targets.check(train, view, first)  # before any work, and before a strategy draws its task's plan
    device = torch.device(shared.device)
    # stacked members keep the contiguous layout: their weights are [K, ...] blocks of one flat tensor
    mode = forward_mode(shared.precision, False if members else shared.channels_last, device, train.x.dim())
    if not members:
        mode.prepare(model.to(device))
    if strategy is not None:
        train = strategy.before_task(model, train, settings)
        soft_targets.check(train, view, distiller)  # joint trains on more than the task's data
    train = train.to(device)  # once: every batch and every validation pass is indexed on the device
    val = None if val is None else val.to(device)
    teacher = soft_targets.teacher
    if teacher is not None:
        mode.prepare(teacher.to(device)).eval()
    steps_per_epoch = -(-len(train) // shared.batch_size)
    if members:
        sample = mode.inputs(view.normalise(train.x[:8]))
        group = member_group(model, settings, distiller, steps_per_epoch, device, sample)
        return _fit(group, train, val, shared, soft_targets.to(device), on_epoch, view, mode)
    try:
        # before the optimiser: attach may create connectors; it probes shapes on model-ready inputs
        distiller.attach(model, teacher, train, sample=mode.inputs(view.normalise(train.x[:2])))
        distiller.to(device)
        one = OneModel(model, settings, distiller, strategy, steps_per_epoch)
        [history] = _fit(one, train, val, settings, soft_targets.to(device), [on_epoch], view, mode)
        if strategy is not None:
            strategy.after_task(model)
        return history
    finally:
        distiller.detach()


def shared_settings(settings, distillers, on_epoch, models, strategy) -> TrainSettings:
    """What stacked members share (all but lr and weight_decay); ValueError, naming the fix, where they cannot."""
    counts = {len(models), len(settings), len(distillers), len(on_epoch) if isinstance(on_epoch, list) else None}
    if len(counts - {None}) != 1:
        raise ValueError("stacked members: pass one settings, one distiller and one callback per model")
    if any(replace(s, lr=0.0, weight_decay=0.0) != replace(settings[0], lr=0.0, weight_decay=0.0) for s in settings):
        raise ValueError("stacked members may differ only in lr and weight_decay; train the others one at a time")
    MemberLosses(distillers)  # raises for methods members cannot share (feature methods), before any work
    s = settings[0]
    if s.compile or s.splits_backbone or strategy is not None:
        raise ValueError(
            "stacked members train without torch.compile, backbone learning rates or lifelong strategies; "
            "train those one at a time"
        )
    return s


def member_group(models, settings, distillers, steps_per_epoch: int, device: torch.device, sample: torch.Tensor):
    """The group of stacked members; its shared schedule is torch's, on a one-parameter optimiser at lr 1."""
    s = replace(settings[0], lr=1.0, weight_decay=0.0)
    optimizer = make_optimizer([torch.zeros(1, requires_grad=True)], s)
    return MemberGroup(
        [m.to(device) for m in models],
        [m.lr for m in settings],
        [m.weight_decay for m in settings],
        distillers,
        s.optimizer,
        nesterov=s.momentum > 0,  # as make_optimizer
        shared=(optimizer, make_schedule(optimizer, s, steps_per_epoch)),
        device=device,
        sample=sample,
    )


class OneModel:
    """The training loop's view of one model: torch's optimiser and schedule, a strategy's hooks."""

    drops_failures = False  # the callback's exception (a pruned trial) ends the fit

    def __init__(self, model, settings: TrainSettings, distiller: Distiller, strategy, steps_per_epoch: int):
        self.model, self.settings, self.distiller, self.strategy = model, settings, distiller, strategy
        self.needs_features = distiller.needs_features
        self.forward = torch.compile(model) if settings.compile else model  # shares the weights; compiles on use
        params, self.backbone = param_groups(model, distiller, settings)
        self.optimizer = make_optimizer(params, settings)
        self.schedule = make_schedule(self.optimizer, settings, steps_per_epoch)
        self.best = BestEpoch(model)
        self.members = [0]

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        for p in self.backbone:  # frozen: no gradient, so the optimiser skips it (its BatchNorm statistics adapt)
            p.requires_grad_(epoch > self.settings.freeze_backbone_epochs)

    def loss_terms(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        terms = self.distiller.loss_terms(logits, batch)
        if self.strategy is not None:
            terms.update(self.strategy.loss_terms(self.model, logits, batch))
        return terms

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()

    def after_step(self, batch: Batch, logits: torch.Tensor) -> None:
        if self.strategy is not None:
            self.strategy.after_step(batch, logits.detach())

    def evaluate(self, split, batch_size, transform, mode) -> list[dict[str, float]]:
        return [evaluate(self.model, split, batch_size, transform, mode)]

    def offer(self, member: int, epoch: int, acc: float) -> None:
        self.best.offer(epoch, acc)

    def best_epoch(self, member: int) -> int:
        return self.best.epoch

    def drop(self, members: set[int]) -> None:
        self.members = [m for m in self.members if m not in members]

    def finish(self, histories: list[History], has_val: bool) -> None:
        for p in self.backbone:
            p.requires_grad_(True)
        if has_val:
            self.best.restore()
            histories[0].kept_epoch = self.best.epoch


def _fit(
    trainee,
    train: Split,
    val: Split | None,
    settings: TrainSettings,
    targets: SoftTargets,
    on_epoch: list[EpochCallback | None] | None,
    view: InputView,
    mode: ForwardMode,
) -> list[History]:
    """The one loop: `trainee` is one model (OneModel) or stacked members (kdcore/member_group.py)."""
    device = train.x.device
    teacher_logits, teacher_views, teacher = targets.logits, targets.views, targets.teacher
    generator = torch.Generator().manual_seed(settings.seed)
    augment_generator = torch.Generator(device=device).manual_seed(settings.seed + 1)  # own stream: batch order stays
    # Un-augmented inputs are the same every epoch: normalise them once where that costs little memory.
    once = not view.augments and teacher_views is None and train.x.numel() * 4 <= NORMALISE_ONCE_BYTES
    inputs = view.normalise(train.x) if once else None
    histories = [History() for _ in trainee.members]
    callbacks = on_epoch or [None] * len(histories)
    for epoch in range(1, settings.epochs + 1):
        trainee.start_epoch(epoch)
        order = torch.randperm(len(train), generator=generator).to(device)
        choice = teacher_views.choose(augment_generator) if teacher_views is not None else None
        step_terms, step_sizes = [], []  # per step: one stacked tensor, summed once per epoch (no sync per step)
        for start in range(0, len(train), settings.batch_size):
            index = order[start : start + settings.batch_size]
            soft = teacher_logits[index] if teacher_logits is not None else None
            if teacher_views is not None:  # the student sees exactly the view whose teacher logits were stored
                x, soft = teacher_views.replay(train.x, index, choice)
            elif inputs is not None:
                x = inputs[index]
            elif view.augments:
                x = view.augment(train.x[index], augment_generator)
            else:
                x = view.normalise(train.x[index])
            x = mode.inputs(x)
            with mode.context(device):
                # online: the teacher scores the batch exactly as the student sees it. Feature methods read no
                # soft targets: their own teacher pass, for its features, is the step's only one.
                if soft is None and teacher is not None and not trainee.needs_features:
                    with torch.no_grad():
                        soft = teacher(x).float()
                logits = trainee.forward(x)
            batch = Batch(
                x=x,
                y=train.y[index],
                index=index,
                teacher_logits=soft,
                epoch=epoch,
                epochs=settings.epochs,
                autocast=mode.autocast,
            )
            # outside autocast, on float32 logits: softmax / KL / log terms stay float32 (a no-op in fp32 mode)
            logits = logits.float()
            terms = trainee.loss_terms(logits, batch)
            loss = reduce(operator.add, terms.values())  # stacked members: each term and the loss are [K]
            trainee.step(loss)
            trainee.after_step(batch, logits)
            step_terms.append(torch.stack([v.detach() for v in (*terms.values(), loss)]))
            step_sizes.append(len(index))
        sizes = torch.tensor(step_sizes, dtype=torch.float32, device=device)
        totals = torch.tensordot(sizes, torch.stack(step_terms).float(), dims=1)  # the epoch's one sync below
        names = [f"train/{k}" for k in [*terms, "loss"]]
        rows = [dict(zip(names, (v / len(train) for v in row))) for row in totals.reshape(len(names), -1).T.tolist()]
        if val is not None:
            scores = trainee.evaluate(val, settings.batch_size * 4, view.normalise, mode)
            rows = [{**row, **{f"val/{k}": v for k, v in score.items()}} for row, score in zip(rows, scores)]
        leaving = set()
        for member, metrics in zip(trainee.members, rows):
            history = histories[member]
            history.append(metrics)
            if trainee.drops_failures and not math.isfinite(metrics["train/loss"]):
                history.dropped_by = FloatingPointError(f"non-finite train/loss at epoch {epoch}")
                leaving.add(member)
                continue
            try:
                if callbacks[member] is not None:
                    callbacks[member](epoch, metrics)
            except Exception as e:
                if not trainee.drops_failures:
                    raise
                history.dropped_by = e
                leaving.add(member)
                continue
            if val is None:
                history.kept_epoch = epoch
                continue
            trainee.offer(member, epoch, metrics["val/acc"])
            if (
                settings.early_stop_patience is not None
                and epoch - trainee.best_epoch(member) >= settings.early_stop_patience
            ):
                leaving.add(member)
        trainee.drop(leaving)
        if not trainee.members:
            break
    trainee.finish(histories, val is not None)
    return histories


class BestEpoch:
    """A copy of the model's weights at its best validation accuracy so far.

    Ties keep the earlier epoch: a later one must be strictly better, the same test early stopping counts
    patience by; on small validation splits ties are common, and the earlier epoch is the cheaper count a
    refit on train + validation will train for.
    """

    def __init__(self, model: nn.Module):
        self.model, self.epoch, self.acc, self.state = model, 0, float("-inf"), None

    def offer(self, epoch: int, acc: float) -> None:
        if acc > self.acc:
            self.epoch, self.acc = epoch, acc
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}  # on the device

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)
