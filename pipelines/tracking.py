"""MLflow conventions: where runs go, what a run's params are, and how stage runs nest."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pipelines.config import PipelineConfig

_USERINFO = re.compile(r"(?<=://)[^/\s]*@")  # up to the authority's last @: a password may hold an @
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|secret)=)[^&#\s]*")


def redact(uri: str | None) -> str | None:
    """`postgresql://user:secret@host/db?password=x` -> `postgresql://***@host/db?password=***`: credentials never get logged."""
    return None if uri is None else _QUERY_SECRET.sub(r"\1***", _USERINFO.sub("***@", uri))


def tracking_uri(cfg: PipelineConfig) -> str:
    if cfg.runtime.tracking_uri:
        return cfg.runtime.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = Path(cfg.runtime.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def setup_experiment(cfg: PipelineConfig) -> str:
    """Point MLflow at the configured store and return the experiment id (created if new)."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    name = cfg.runtime.experiment or f"kdflow-{cfg.name}"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:") and not cfg.runtime.tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        artifacts = (Path(cfg.runtime.store_dir).resolve() / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


def loggable_params(cfg: PipelineConfig) -> dict[str, str]:
    """The flattened config as MLflow params, with credentials removed from every URI."""
    out = {}
    for key, value in cfg.flat().items():
        text = "" if value is None else str(value)
        out[key] = redact(text) if "://" in text else text
    return out


@contextmanager
def stage_run(name: str, parent_run_id: str, **tags: Any) -> Iterator[mlflow.ActiveRun]:
    """A nested run under the pipeline's parent run; marked FAILED if the stage raises."""
    parent = mlflow.get_run(parent_run_id)
    with mlflow.start_run(
        experiment_id=parent.info.experiment_id,
        run_name=name,
        nested=True,
        parent_run_id=parent_run_id,
        tags={"kdflow.stage": name, **{k: str(v) for k, v in tags.items()}},
    ) as run:
        yield run


class EpochLogger:
    """Training callback: one batched MLflow call per epoch, metrics at step=epoch."""

    def __init__(self, run_id: str, prefix: str = ""):
        self.run_id, self.prefix, self.client = run_id, prefix, MlflowClient()

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        import time

        now = int(time.time() * 1000)
        batch = [Metric(self.prefix + k, float(v), now, epoch) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
