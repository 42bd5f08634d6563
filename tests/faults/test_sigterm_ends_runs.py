"""SIGTERM stops `kdflow run`, tuning workers included, and leaves no MLflow run or Optuna trial RUNNING."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

from tests.conftest import isolated_env
from tests.faults.stacks import wait_or_show_stacks

TUNING = [
    *("--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1"),
    *("--set", "tune.n_workers=2", "--set", "tune.n_trials=50", "--set", "tune.epochs=500"),
]


def count(db, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_sigterm_during_tuning_ends_every_run_and_trial(tmp_path):
    mlflow_db, optuna_db = tmp_path / "mlruns" / "mlflow.db", tmp_path / "mlruns" / "optuna.db"
    log = tmp_path / "run.log"  # a file, not a pipe: an unread pipe would fill and block the run
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", *TUNING],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    trials_running = "select count(*) from runs where name like 'trial-%' and status = 'RUNNING'"
    while count(mlflow_db, trials_running) < 2:  # both workers are inside a trial
        assert run.poll() is None, log.read_text()[-3000:]
        time.sleep(1)
    run.send_signal(signal.SIGTERM)
    assert wait_or_show_stacks(run, 300, log) != 0
    stderr = log.read_text()
    assert count(mlflow_db, "select count(*) from runs where status = 'RUNNING'") == 0, stderr[-3000:]
    assert count(optuna_db, "select count(*) from trials where state = 'RUNNING'") == 0, stderr[-3000:]
