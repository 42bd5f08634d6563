"""Shared stores by URL: credentials travel in the environment of each machine, never in params or logs."""

from __future__ import annotations

from pipelines.config.schema import PipelineConfig
from pipelines.tracking.runs import redact
from pipelines.tuning.study import OPTUNA_STORAGE_ENV

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def has_credentials(uri: str | None) -> bool:
    return uri is not None and redact(uri) != uri


def move_credentials_to_env(cfg: PipelineConfig) -> tuple[PipelineConfig, dict[str, str]]:
    """A config whose store URIs carry no password, and the environment that carries them instead.

    The config becomes Prefect flow parameters and MLflow params; the environment does not.
    """
    env: dict[str, str] = {}
    tune, runtime = {}, {}
    if has_credentials(cfg.tune.storage):
        env[OPTUNA_STORAGE_ENV], tune["storage"] = cfg.tune.storage, None
    if has_credentials(cfg.runtime.tracking_uri):
        env[TRACKING_URI_ENV], runtime["tracking_uri"] = cfg.runtime.tracking_uri, None
    if not env:
        return cfg, env
    clean = cfg.model_copy(
        update={
            "tune": cfg.tune.model_copy(update=tune),
            "runtime": cfg.runtime.model_copy(update=runtime),
        }
    )
    return clean, env
