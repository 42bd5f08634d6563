"""A trial whose worker died: its MLflow run ends FAILED and Optuna queues the same parameters again."""

from __future__ import annotations

import logging

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

log = logging.getLogger("kdflow")


class FailRunAndRetry:
    """Heartbeat-stale callback: whichever worker notices the silence closes the dead trial's run, then retries it."""

    def __init__(self, max_retry: int | None = 3):
        # Optuna 5 deprecates RetryFailedTrialCallback; this is its successor.
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            client = MlflowClient()
            try:
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_tag(run_id, "trial_state", "FAIL")
                    client.set_tag(run_id, "kdflow.failure", "worker stopped heartbeating; trial retried")
                    client.set_terminated(run_id, status="FAILED")
            except Exception as e:  # the retry matters more than the bookkeeping
                log.warning("tune: could not mark MLflow run %s failed (%s)", run_id, type(e).__name__)
        log.info("tune: trial %d lost its worker (%s); queued again", trial.number, trial.user_attrs.get("worker", "?"))
        self.retry(study, trial)
