"""MLflow conventions: where runs go, what a run's params are, and how stage runs nest."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

from pipelines.cache.store_lock import store_lock
from pipelines.config.schema import PipelineConfig
from pipelines.tracking.run_liveness import fail_orphaned_runs, liveness_tags

log = logging.getLogger("kdflow")

_USERINFO = re.compile(r"(?<=://)[^/\s]*@")  # up to the authority's last @: a password may hold an @
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|secret)=)[^&#\s]*")


def redact(uri: str | None) -> str | None:
    """`postgresql://user:secret@host/db?password=x` -> `postgresql://***@host/db?password=***`:
    credentials never get logged."""
    return None if uri is None else _QUERY_SECRET.sub(r"\1***", _USERINFO.sub("***@", uri))


# mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: the URIs kdflow chose itself, so that a later config
# (another store_dir in the same process) is not mistaken for a user's MLFLOW_TRACKING_URI.
_EXPORTED_BY_KDFLOW: set[str] = set()


def users_tracking_env() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it (None if unset or exported by kdflow's own set_tracking_uri)."""
    value = os.environ.get("MLFLOW_TRACKING_URI")
    return None if not value or value in _EXPORTED_BY_KDFLOW else value


def use_tracking_uri(uri: str, chosen_by_kdflow: bool) -> None:
    """mlflow.set_tracking_uri, remembering whether the URI it exports was kdflow's default or the user's."""
    if chosen_by_kdflow:
        _EXPORTED_BY_KDFLOW.add(uri)
    mlflow.set_tracking_uri(uri)


def tracking_uri(cfg: PipelineConfig) -> str:
    if cfg.runtime.tracking_uri:
        return cfg.runtime.tracking_uri
    if users_tracking_env():
        return users_tracking_env()
    store = Path(cfg.runtime.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def setup_experiment(cfg: PipelineConfig) -> str:
    """Point MLflow at the configured store and return the experiment id (created if new)."""
    uri = tracking_uri(cfg)
    use_tracking_uri(uri, chosen_by_kdflow=not cfg.runtime.tracking_uri and not users_tracking_env())
    name = cfg.runtime.experiment or f"kdflow-{cfg.name}"
    # The first touch of a new SQLite store runs MLflow's migrations: one process at a time, or they interleave.
    with store_lock(cfg.runtime.store_dir, "mlflow-store", "MLflow store: another kdflow process is setting it up"):
        fail_orphaned_runs()  # runs a killed process left RUNNING end now, as FAILED, with the reason
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        # A database store keeps artifacts in runtime.store_dir (MLflow's default: ./mlruns of whatever folder the
        # run started in); a tracking server decides where its artifacts go.
        served = uri.split(":", 1)[0] in ("http", "https", "databricks")
        artifacts = None if served else (Path(cfg.runtime.store_dir).resolve() / "artifacts").as_uri()
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
        tags={"kdflow.stage": name, **liveness_tags(), **{k: str(v) for k, v in tags.items()}},
    ) as run:
        yield run


class TrackingError(RuntimeError):
    """Metrics that were queued for MLflow but never reached it."""


class EpochLogger:
    """Training callback: each epoch's metrics as one MLflow batch at step=epoch, written in the background.

    MLflow's async logging thread writes the batches, so an epoch never waits on the store. Use it as a
    context manager inside the stage's run (or call `flush`): leaving waits until every batch is stored
    and raises TrackingError if any failed, so the run never ends with metrics still in flight.
    """

    def __init__(self, run_id: str, prefix: str = ""):
        self.run_id, self.prefix, self.client = run_id, prefix, MlflowClient()
        self._pending: list[RunOperations] = []

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(self.prefix + k, float(v), now, epoch) for k, v in metrics.items()]
        self._pending.append(self.client.log_batch(self.run_id, metrics=batch, synchronous=False))

    def flush(self) -> None:
        """Block until every queued epoch is stored; raise if any of them failed."""
        pending, self._pending = self._pending, []
        errors = []
        for operation in pending:
            try:
                operation.wait()
            except Exception as e:  # MLflow gathers the failures of one batch in one MlflowException
                errors.append(e)
        if errors:
            raise TrackingError(
                f"{len(errors)} of {len(pending)} epochs' metrics were not logged to MLflow run {self.run_id}: "
                f"{errors[0]}"
            ) from errors[0]

    def __enter__(self) -> EpochLogger:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
            return
        try:  # the stage is failing already: store what we can, report its error rather than ours
            self.flush()
        except TrackingError as e:
            log.warning("%s", e)
