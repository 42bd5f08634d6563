"""Optuna conventions: storage, study naming, search space, pruners."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna

from pipelines.config import PipelineConfig, Range

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


def search(trial: optuna.Trial, cfg: PipelineConfig) -> dict[str, float]:
    """The tuned parameters: KD's temperature and alpha, the student's learning rate and weight decay."""
    return {name: suggest(trial, name, getattr(cfg.tune.space, name)) for name in ("temperature", "alpha", "lr", "weight_decay")}


def defaults(cfg: PipelineConfig) -> dict[str, float]:
    """The config's own values: the warm start of a new study and the choice when nothing is tuned."""
    return {
        "temperature": cfg.distill.temperature,
        "alpha": cfg.distill.alpha,
        "lr": cfg.student.train.lr,
        "weight_decay": cfg.student.train.weight_decay,
    }


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
