"""Optuna conventions: storage, study naming, search space, pruners."""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from pathlib import Path

import optuna

from kdcore.models import MODELS
from kdcore.models.registry import depths_within
from pipelines.cache.store_lock import store_lock
from pipelines.config.methods import method_space, method_values, needs_teacher_model, searched_methods
from pipelines.config.schema import ModelConfig, PipelineConfig, Range
from pipelines.results import TuneResult

log = logging.getLogger("kdflow")
OPTUNA_STORAGE_ENV = "KDFLOW_OPTUNA_STORAGE"  # where a storage URL with a password belongs

# Heartbeats and stale-trial retries are "experimental" in Optuna 5 but the documented way to survive dead workers.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def storage_url(cfg: PipelineConfig) -> str:
    if cfg.tune.storage:
        return cfg.tune.storage
    if os.environ.get(OPTUNA_STORAGE_ENV):
        return os.environ[OPTUNA_STORAGE_ENV]
    store = Path(cfg.runtime.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'optuna.db'}"


def suggest(trial: optuna.Trial, name: str, r: Range) -> float:
    return trial.suggest_float(name, r.low, r.high, log=r.log)


def search(trial: optuna.Trial, cfg: PipelineConfig) -> tuple[str, dict[str, float]]:
    """The method (a categorical when tune.methods lists several), its own weights, the student's lr and weight decay.

    The space is conditional: a trial suggests only the weights of the method it drew.
    """
    methods = searched_methods(cfg)
    method = trial.suggest_categorical("method", methods) if len(methods) > 1 else methods[0]
    params = {name: suggest(trial, name, r) for name, r in method_space(cfg, method).items()}
    params.update({name: suggest(trial, name, getattr(cfg.tune.space, name)) for name in ("lr", "weight_decay")})
    return method, params


STUDENT_KEYS = ("student_arch", "width", "depth")  # a trial's parameters that set the student's architecture and size
SIZE_OPTIONS = ("width", "depth", "width_multiplier", "input_dropout", "ngrams", "buckets")


def searched_students(cfg: PipelineConfig) -> list[str]:
    return cfg.tune.student_archs or [cfg.student.arch]


def searches_size(cfg: PipelineConfig) -> bool:
    """The student's architecture or size is part of the search."""
    space = cfg.tune.space
    return cfg.tune.n_trials > 0 and bool(cfg.tune.student_archs or space.width or space.depth)


def has_option(arch: str, option: str) -> bool:
    return option in inspect.signature(MODELS[arch]).parameters


def option_default(arch: str, option: str) -> int:
    return inspect.signature(MODELS[arch]).parameters[option].default


def student_spec(cfg: PipelineConfig, arch: str, **sizes: int) -> ModelConfig:
    """cfg.student as `arch` at `sizes`; the configured options `arch` does not take are dropped."""
    tree = {**cfg.student.model_dump(), "arch": arch, **sizes}
    tree.update({option: None for option in SIZE_OPTIONS if not has_option(arch, option)})
    return ModelConfig.model_validate(tree)


def size_values(cfg: PipelineConfig, arch: str, size: str) -> range | None:
    """The values of `size` searched for `arch`, with their step (a ResNet's depths are 6n+2: 8, 14, 20 of 8-20);
    None when `size` is not searched for `arch`."""
    r = getattr(cfg.tune.space, size)
    if r is None or not has_option(arch, size):
        return None
    return depths_within(arch, r.low, r.high) if size == "depth" else range(r.low, r.high + 1)


def search_student(trial: optuna.Trial, cfg: PipelineConfig) -> ModelConfig:
    """The student's architecture (a categorical when tune.student_archs lists several) and its searched sizes.

    A size is suggested only for architectures that have it (cnn_small has no depth), and only values they can
    have (a ResNet's depth steps by 6).
    """
    archs = searched_students(cfg)
    arch = trial.suggest_categorical("student_arch", archs) if len(archs) > 1 else archs[0]
    sizes = {}
    for size in ("width", "depth"):
        if values := size_values(cfg, arch, size):
            log = getattr(cfg.tune.space, size).log
            sizes[size] = trial.suggest_int(size, values.start, values[-1], step=values.step, log=log)
    return student_spec(cfg, arch, **sizes)


def smallest_student(cfg: PipelineConfig, arch: str) -> ModelConfig:
    """`arch` at the smallest searched sizes (its own otherwise): what the checks before any work build."""
    return student_spec(cfg, arch, **{s: v.start for s in ("width", "depth") if (v := size_values(cfg, arch, s))})


def chosen_student(cfg: PipelineConfig, params: dict) -> ModelConfig:
    """The student a trial's parameters describe (cfg.student when its size was not searched)."""
    arch = params.get("student_arch", searched_students(cfg)[0])
    return student_spec(cfg, arch, **{k: int(params[k]) for k in ("width", "depth") if k in params})


def final_student(cfg: PipelineConfig, tuned: TuneResult) -> ModelConfig:
    """The student the search chose (its architecture and size), or cfg.student when its size was not searched."""
    return ModelConfig.model_validate(tuned.student) if tuned.student else cfg.student


def with_student(cfg: PipelineConfig, student: ModelConfig) -> PipelineConfig:
    """cfg whose student is `student`: what the final runs log as student.* params and record as lineage."""
    return cfg if student == cfg.student else cfg.model_copy(update={"student": student})


def student_warm_start(cfg: PipelineConfig) -> dict[str, str | int]:
    """The configured student (its architecture and size, moved inside the searched ranges) as a first trial."""
    archs = searched_students(cfg)
    arch = cfg.student.arch if cfg.student.arch in archs else archs[0]
    out: dict[str, str | int] = {"student_arch": arch} if len(archs) > 1 else {}
    for size in ("width", "depth"):
        if values := size_values(cfg, arch, size):
            value = getattr(cfg.student, size) if arch == cfg.student.arch else None
            value = option_default(arch, size) if value is None else value
            out[size] = min(values, key=lambda v: (abs(v - value), v))  # the nearest value the search can suggest
    return out


def defaults(cfg: PipelineConfig, method: str | None = None) -> dict[str, float]:
    """The config's own values of the tuned parameters: the warm start of a new study and the choice when
    nothing is tuned."""
    method = method or searched_methods(cfg)[0]
    values = method_values(cfg, method)
    return {
        **{name: values[name] for name in method_space(cfg, method)},
        "lr": cfg.student.train.lr,
        "weight_decay": cfg.student.train.weight_decay,
    }


def warm_starts(cfg: PipelineConfig) -> list[dict[str, float | str]]:
    """The first trials of a new study: each searched method once, with its configured (published) weights.

    distill.method comes first when it is searched; then tune.methods in their order. So every method
    gets one known-good trial before TPE starts guessing, and pruning has sound trials to compare with.
    """
    methods = searched_methods(cfg)
    first = cfg.distill.method if cfg.distill.method in methods else methods[0]
    ordered = [first, *(m for m in methods if m != first)]
    student = student_warm_start(cfg)
    if len(methods) == 1:
        return [{**student, **inside_ranges(cfg, first, defaults(cfg, first))}]
    return [{"method": method, **student, **inside_ranges(cfg, method, defaults(cfg, method))} for method in ordered]


def inside_ranges(cfg: PipelineConfig, method: str, values: dict[str, float]) -> dict[str, float]:
    """Configured values moved to the nearest end of their search range when outside it.

    The range is what the user asked to search; the preset's value is only a starting point (a preset's
    weight_decay 0 with a log-scale range starting at 1e-6 starts at 1e-6 rather than stopping the run).
    """
    ranges = {**method_space(cfg, method), "lr": cfg.tune.space.lr, "weight_decay": cfg.tune.space.weight_decay}
    out = {}
    for name, value in values.items():
        r = ranges[name]
        out[name] = min(max(value, r.low), r.high)
        if out[name] != value:
            log.info(
                "tune: warm start %s=%g is outside tune.space [%g, %g]; starting at %g",
                name,
                value,
                r.low,
                r.high,
                out[name],
            )
    return out


def fixed_values(cfg: PipelineConfig) -> dict:
    """What the objective depends on but the search does not vary (e.g. crd.nce_k, layer choices):
    part of the study name."""
    out = {}
    for method in searched_methods(cfg):
        searched = method_space(cfg, method)
        out.update({k: v for k, v in method_values(cfg, method).items() if k not in searched})
    if any(needs_teacher_model(m) for m in searched_methods(cfg)):
        out["layers"] = cfg.distill.layers.model_dump()
    return out


def make_pruner(cfg: PipelineConfig, epochs: int) -> optuna.pruners.BasePruner:
    if cfg.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 4))
    if cfg.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 8), max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_storage(cfg: PipelineConfig) -> optuna.storages.RDBStorage:
    """The study's database with heartbeats: a trial silent for tune.grace_seconds is failed and retried."""
    from pipelines.tuning.dead_trials import FailRunAndRetry

    url = storage_url(cfg)
    # SQLite serialises writers; several local workers wait for the lock instead of failing.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # Opening a new storage creates its schema: two first runs at once would interleave the migrations.
    with store_lock(cfg.runtime.store_dir, "optuna-storage", "Optuna storage: another kdflow process is setting it up"):
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=cfg.tune.heartbeat_seconds,
            grace_period=max(cfg.tune.grace_seconds, 2 * cfg.tune.heartbeat_seconds),
            heartbeat_stale_trial_callback=FailRunAndRetry(),
        )


def multi_objective(cfg: PipelineConfig) -> bool:
    return len(cfg.tune.objectives) > 1


def over_budget(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's constraint: the trial's cost minus the budget (<= 0: within it), set before the trial trains."""
    return [trial.user_attrs.get("over_budget_by", 0.0)]


def open_study(cfg: PipelineConfig, study_name: str, epochs: int) -> optuna.Study:
    """Accuracy alone (pruned), or accuracy and a cost (TPE's multi-objective mode; Optuna cannot prune it).

    With register.budget, TPE learns which trials are over it (constraints_func) and samples inside it.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kdflow logs each trial itself, naming its worker
    sampler = optuna.samplers.TPESampler(
        seed=cfg.tune.seed,
        n_startup_trials=max(3, min(10, cfg.tune.n_trials // 3)),
        constraints_func=over_budget if cfg.register.budget else None,
        # trials asked together (tune.vectorise) are told apart by a pessimistic guess for the running ones
        constant_liar=cfg.tune.vectorise != 1,
    )
    multi = multi_objective(cfg)
    return optuna.create_study(
        storage=open_storage(cfg),
        study_name=study_name,
        directions=["maximize", "minimize"] if multi else ["maximize"],
        sampler=sampler,
        pruner=optuna.pruners.NopPruner() if multi else make_pruner(cfg, epochs),
        load_if_exists=True,
    )


def best_accuracy(study: optuna.Study) -> float | None:
    """The highest validation accuracy of a complete trial (study.best_value fails on two objectives)."""
    values = [t.values[0] for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    return max(values, default=None)


def count(study: optuna.Study, state: optuna.trial.TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def trial_rows(cfg: PipelineConfig, study_name: str) -> list[dict]:
    """Every trial of the study as a flat row: number, state, value, parameters, MLflow run."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url(cfg))
    except KeyError:  # no study when nothing was tuned
        return []
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "state": t.state.name, "val/acc": None if t.values is None else round(t.values[0], 4)}
        row.update({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in t.params.items()})  # method: a name
        row.update(
            {
                k: v if k in ("cost.params", "cost.flops") else float(f"{v:.4g}")
                for k, v in t.user_attrs.items()
                if k.startswith("cost.")
            }
        )
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        rows.append(row)
    return rows
