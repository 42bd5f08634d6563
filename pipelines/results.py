"""What each stage returns: small, serialisable records (paths, ids, numbers), never tensors."""

from __future__ import annotations

from pydantic import BaseModel


class PreparedData(BaseModel):
    path: str
    digest: str
    num_classes: int
    input_shape: list[int]
    sizes: dict[str, int]


class TrainedModel(BaseModel):
    role: str
    arch: str
    checkpoint: str
    run_id: str
    model_uri: str | None = None
    parameters: int
    val_acc: float | None  # the kept epoch's; None: fit on train + validation (tune.refit), nothing held out
    best_epoch: int | None = None  # the epoch whose weights were kept (the last one without a validation split)
    seconds: float
    reused: bool = False


class TuneResult(BaseModel):
    study_name: str
    storage: str
    method: str = "kd"  # the chosen KD method; best_params are its weights (+ lr, weight_decay)
    best_params: dict[str, float]
    best_value: float | None  # the best trial's val/acc at its best epoch
    best_epoch: int | None = None  # that epoch: the count a refit on train + validation trains for
    complete: int
    pruned: int
    seconds: float
    student: dict | None = None  # the chosen student's ModelConfig when its size was searched; None: cfg.student
    chosen_trial: int | None = None
    choice: str | None = None  # why that trial (a budget or a front); None: the best accuracy, as always
    costs: dict[str, float] = {}  # the chosen student's measured costs (params, latency_ms, ...)
    front: list[dict] = []  # the accuracy-versus-cost Pareto front, cheapest first


class Evaluation(BaseModel):
    run_id: str
    test_acc: dict[str, float]
    parameters: dict[str, int]
    eval_digest: str  # of the test split: versions compare only on equal digests
    size_mb: dict[str, float] = {}  # saved weights on disk
    timing: dict[str, dict[str, float]] = {}  # per role: latency_ms_median, latency_ms_p95, throughput; {}: timing off
    device_name: str = ""  # where the times were measured


class Registration(BaseModel):
    name: str
    version: str
    role: str  # "student" (distilled) or "baseline" (labels only): the better on validation
    choice: str  # why that one
    test_acc: float
    champion: bool  # this version is now the champion
    reason: str  # the gate's
    comparable: bool = True  # False: the champion was scored on other test data
    champion_before: str | None = None
