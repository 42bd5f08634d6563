"""Shared fixtures: run the real `kdflow` command in an isolated working directory."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "--set",
    "teacher.train.epochs=3",
    "--set",
    "student.train.epochs=3",
    "--set",
    "tune.n_trials=3",
    "--set",
    "tune.epochs=3",
    "--set",
    "evaluate.timing_seconds=0.2",  # latency and throughput are still measured, in 0.2 s per model instead of 3
]


@pytest.fixture(autouse=True)
def kdflow_logger_as_it_was():
    """A test that calls the CLI in-process (`flows.cli.main`) reconfigures the `kdflow` logger (its own handler,
    no propagation): put it back, or later tests' caplog sees nothing."""
    log = logging.getLogger("kdflow")
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    yield
    log.handlers[:], log.propagate = handlers, propagate
    log.setLevel(level)


@pytest.fixture(autouse=True)
def mlflow_globals_as_they_were():
    """MLflow keeps the tracking and registry URIs, the active experiment and an active run process-wide, and
    exports them as MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI / MLFLOW_EXPERIMENT_ID: a test that set them
    (in-process stages, set_experiment) would send later tests to a store or an experiment id not their own.
    Put all of it back."""
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
    env = {name: os.environ.get(name) for name in names}
    uri, registry_uri, experiment = tracking._tracking_uri, registry._registry_uri, fluent._active_experiment_id
    yield
    while fluent.active_run() is not None:
        fluent.end_run()
    tracking._tracking_uri, registry._registry_uri, fluent._active_experiment_id = uri, registry_uri, experiment
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # a busy 2-core CI box starts it slowly
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))  # this checkout's code
    return env


@pytest.fixture
def kdflow(tmp_path):
    """Run `kdflow ARGS` in tmp_path with its own Prefect home; return (completed process, summary or None)."""

    def run(*args: str, timeout: float = 600):
        out = tmp_path / "summary.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "flows.cli", *args]
        if args and args[0] == "run":
            cmd += ["--output", str(out)]
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=timeout
        )
        summary = json.loads(out.read_text()) if out.exists() else None
        return proc, summary

    return run
