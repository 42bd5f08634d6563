"""Optuna conventions: storage, study naming, search space, pruners."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna

from pipelines.config import PipelineConfig, Range
from pipelines.methods import method_space, method_values, needs_teacher_model, searched_methods

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
    if len(methods) == 1:
        return [defaults(cfg, first)]
    return [{"method": method, **defaults(cfg, method)} for method in ordered]


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
    from pipelines.dead_trials import FailRunAndRetry

    url = storage_url(cfg)
    # SQLite serialises writers; several local workers wait for the lock instead of failing.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine,
        heartbeat_interval=cfg.tune.heartbeat_seconds,
        grace_period=max(cfg.tune.grace_seconds, 2 * cfg.tune.heartbeat_seconds),
        heartbeat_stale_trial_callback=FailRunAndRetry(),
    )


def open_study(cfg: PipelineConfig, study_name: str, epochs: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kdflow logs each trial itself, naming its worker
    sampler = optuna.samplers.TPESampler(seed=cfg.tune.seed, n_startup_trials=max(3, min(10, cfg.tune.n_trials // 3)))
    return optuna.create_study(
        storage=open_storage(cfg),
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=make_pruner(cfg, epochs),
        load_if_exists=True,
    )


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
        row = {"trial": t.number, "state": t.state.name, "val/acc": None if t.value is None else round(t.value, 4)}
        row.update({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in t.params.items()})  # method: a name
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        rows.append(row)
    return rows
