"""Ctrl-C stops `kdflow run`, tuning workers included, and leaves no MLflow run or Optuna trial RUNNING.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the run, its tuning workers and its
temporary Prefect server all get it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import isolated_env
from tests.faults.stacks import wait_or_show_stacks
from tests.faults.test_sigterm_ends_runs import TUNING, count


def test_ctrl_c_during_tuning_ends_every_run_and_trial(tmp_path):
    mlflow_db, optuna_db = tmp_path / "mlruns" / "mlflow.db", tmp_path / "mlruns" / "optuna.db"
    log = tmp_path / "run.log"  # a file, not a pipe: an unread pipe would fill and block the run
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", *TUNING],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    trials_running = "select count(*) from runs where name like 'trial-%' and status = 'RUNNING'"
    try:
        while count(mlflow_db, trials_running) < 2:  # both workers are inside a trial
            assert run.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        os.killpg(run.pid, signal.SIGINT)
        interrupted = time.monotonic()
        assert wait_or_show_stacks(run, 300, log) != 0
        print(f"kdflow run exited {time.monotonic() - interrupted:.1f} s after Ctrl-C")  # reported, not asserted
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    stderr = log.read_text()
    assert count(mlflow_db, "select count(*) from runs where status = 'RUNNING'") == 0, stderr[-3000:]
    assert count(optuna_db, "select count(*) from trials where state = 'RUNNING'") == 0, stderr[-3000:]
