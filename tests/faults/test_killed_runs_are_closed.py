"""A run whose process was killed is marked FAILED, with the reason, by the next command on the store;
a live run is never touched."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.tracking.run_liveness import END_REASON_TAG, HOST_TAG, PID_TAG, fail_orphaned_runs, liveness_tags
from tests.conftest import TINY, isolated_env


def test_only_runs_of_ended_processes_on_this_host_are_failed(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    dead_pid = subprocess.Popen(["true"])  # its pid is gone once it is reaped
    dead_pid.wait()
    runs = {
        "alive": liveness_tags(),
        "dead": {**liveness_tags(), PID_TAG: str(dead_pid.pid)},
        "other host": {HOST_TAG: "some-other-host", PID_TAG: str(dead_pid.pid)},
        "untagged": {},
    }
    ids = {name: client.create_run(experiment, tags=tags, run_name=name).info.run_id for name, tags in runs.items()}
    assert fail_orphaned_runs(client) == 1
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"alive": "RUNNING", "dead": "FAILED", "other host": "RUNNING", "untagged": "RUNNING"}
    assert "ended" in client.get_run(ids["dead"]).data.tags[END_REASON_TAG]


def running_teacher(folder) -> bool:
    db = folder / "mlruns" / "mlflow.db"
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=1) as con:
            row = con.execute(
                "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
                "where t.key = 'kdflow.stage' and t.value = 'teacher' and r.status = 'RUNNING'"
            ).fetchone()
        return row[0] > 0
    except sqlite3.Error:  # the store is still being created
        return False


def test_a_run_killed_during_teacher_training_is_closed_by_the_next_run(tmp_path):
    env = isolated_env(tmp_path)
    cmd = [sys.executable, "-m", "flows.cli", "run"]
    slow = ["--set", "teacher.train.epochs=2000"]  # long enough to be killed while training
    victim = subprocess.Popen(
        [*cmd, *slow],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not running_teacher(tmp_path):
            assert victim.poll() is None, "the run ended before its teacher started"
            time.sleep(1)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)  # with its temporary Prefect server
        victim.wait()
    proc = subprocess.run([*cmd, *TINY], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "left RUNNING by ended kdflow processes marked FAILED" in proc.stderr
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    killed = [r for r in runs if r.data.tags.get(PID_TAG) == str(victim.pid)]
    assert len(killed) == 2 and {r.info.status for r in killed} == {"FAILED"}  # parent and teacher
    assert all(END_REASON_TAG in r.data.tags for r in killed)
