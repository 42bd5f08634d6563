"""One training loop for every model and every distiller: in-memory tensors, no DataLoader."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.data.view import InputView
from kdcore.distill.base import Batch, Distiller
from kdcore.evaluate import evaluate
from kdcore.lifelong.base import Strategy
from kdcore.soft_targets import SoftTargets
from kdcore.speed import ForwardMode, forward_mode

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
    model: nn.Module,
    train: Split,
    val: Split | None,
    settings: TrainSettings,
    distiller: Distiller,
    *,
    soft_targets: SoftTargets = SoftTargets(),
    on_epoch: EpochCallback | None = None,
    view: InputView | None = None,
    strategy: Strategy | None = None,
) -> History:
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
    """
    view = view or InputView()
    soft_targets.check(train, view, distiller)  # before any work, and before a strategy draws its task's plan
    device = torch.device(settings.device)
    mode = forward_mode(settings.precision, settings.channels_last, device, train.x.dim())
    mode.prepare(model.to(device))
    if strategy is not None:
        train = strategy.before_task(model, train, settings)
        soft_targets.check(train, view, distiller)  # joint trains on more than the task's data
    train = train.to(device)  # once: every batch and every validation pass is indexed on the device
    val = None if val is None else val.to(device)
    teacher = soft_targets.teacher
    if teacher is not None:
        mode.prepare(teacher.to(device)).eval()
    try:
        # before the optimiser: attach may create connectors; it probes shapes on model-ready inputs
        distiller.attach(model, teacher, train, sample=mode.inputs(view.normalise(train.x[:2])))
        distiller.to(device)
        history = _fit(model, train, val, settings, distiller, soft_targets.to(device), on_epoch, view, mode, strategy)
        if strategy is not None:
            strategy.after_task(model)
        return history
    finally:
        distiller.detach()


def _fit(
    model: nn.Module,
    train: Split,
    val: Split | None,
    settings: TrainSettings,
    distiller: Distiller,
    targets: SoftTargets,
    on_epoch: EpochCallback | None,
    view: InputView,
    mode: ForwardMode,
    strategy: Strategy | None,
) -> History:
    device = train.x.device
    teacher_logits, teacher_views, teacher = targets.logits, targets.views, targets.teacher
    forward = torch.compile(model) if settings.compile else model  # shares the weights; compiles on the first batch
    params, backbone = param_groups(model, distiller, settings)
    optimizer = make_optimizer(params, settings)
    steps_per_epoch = -(-len(train) // settings.batch_size)
    schedule = make_schedule(optimizer, settings, steps_per_epoch)
    generator = torch.Generator().manual_seed(settings.seed)
    augment_generator = torch.Generator(device=device).manual_seed(settings.seed + 1)  # own stream: batch order stays
    # Un-augmented inputs are the same every epoch: normalise them once where that costs little memory.
    once = not view.augments and teacher_views is None and train.x.numel() * 4 <= NORMALISE_ONCE_BYTES
    inputs = view.normalise(train.x) if once else None
    history = History()
    best = BestEpoch(model)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        for p in backbone:  # frozen: no gradient, so the optimiser skips it (its BatchNorm statistics still adapt)
            p.requires_grad_(epoch > settings.freeze_backbone_epochs)
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
                if soft is None and teacher is not None and not distiller.needs_features:
                    with torch.no_grad():
                        soft = teacher(x).float()
                logits = forward(x)
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
            terms = distiller.loss_terms(logits, batch)
            if strategy is not None:
                terms.update(strategy.loss_terms(model, logits, batch))
            loss = reduce(operator.add, terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if strategy is not None:
                strategy.after_step(batch, logits.detach())
            step_terms.append(torch.stack([v.detach() for v in (*terms.values(), loss)]))
            step_sizes.append(len(index))
        sizes = torch.tensor(step_sizes, dtype=torch.float32, device=device)
        totals = (sizes @ torch.stack(step_terms).float()).tolist()  # the epoch's one sync for the train metrics
        metrics = {f"train/{k}": v / len(train) for k, v in zip([*terms, "loss"], totals)}
        if val is not None:
            metrics.update(
                {f"val/{k}": v for k, v in evaluate(model, val, settings.batch_size * 4, view.normalise, mode).items()}
            )
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if val is None:
            history.kept_epoch = epoch
            continue
        best.offer(epoch, metrics["val/acc"])
        if settings.early_stop_patience is not None and epoch - best.epoch >= settings.early_stop_patience:
            break
    for p in backbone:
        p.requires_grad_(True)
    if val is not None:
        best.restore()
        history.kept_epoch = best.epoch
    return history


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
