"""Runs carry a heartbeat renewed while their process lives; a run of another host whose heartbeat is stale is
marked FAILED by the next command, a fresh one is left alone. Times are explicit, never the wall clock's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

from mlflow.tracking import MlflowClient

from pipelines.tracking.run_liveness import (
    END_REASON_TAG,
    HEARTBEAT_EVERY_TAG,
    HEARTBEAT_TAG,
    HOST_TAG,
    PID_TAG,
    beat,
    fail_orphaned_runs,
    liveness_tags,
)
from tests.conftest import isolated_env

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="seconds")


def other_host(seconds_ago: float, every: str = "30") -> dict[str, str]:
    return {HOST_TAG: "another-host", PID_TAG: "4242", HEARTBEAT_TAG: stamp(seconds_ago), HEARTBEAT_EVERY_TAG: every}


def test_stale_heartbeats_fail_fresh_ones_and_live_local_runs_do_not(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    runs = {
        "other host, fresh": other_host(60),  # 2 beats missed: alive
        "other host, stale": other_host(301),  # more than 10 beats of 30 s missed
        "other host, slow beat": other_host(3000, every="600"),  # judged by its own interval
        "here, alive": {**liveness_tags(), HEARTBEAT_TAG: stamp(5)},
        "no heartbeat (older kdflow)": {HOST_TAG: "another-host", PID_TAG: "4242"},
    }
    ids = {name: client.create_run(experiment, tags=tags, run_name=name).info.run_id for name, tags in runs.items()}
    assert fail_orphaned_runs(client, now=NOW) == 1
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "other host, fresh": "RUNNING",
        "other host, stale": "FAILED",
        "other host, slow beat": "RUNNING",
        "here, alive": "RUNNING",
        "no heartbeat (older kdflow)": "RUNNING",
    }
    reason = client.get_run(ids["other host, stale"]).data.tags[END_REASON_TAG]
    assert "no heartbeat" in reason and "another-host" in reason
    assert fail_orphaned_runs(client, now=NOW + timedelta(hours=2)) == 3  # later, only this process's run still beats


def test_beat_renews_only_this_processes_running_runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    mine = client.create_run(experiment, tags={**liveness_tags(), HEARTBEAT_TAG: stamp(100)}).info.run_id
    ended = client.create_run(experiment, tags={**liveness_tags(), HEARTBEAT_TAG: stamp(100)}).info.run_id
    client.set_terminated(ended, status="FINISHED")
    theirs = client.create_run(experiment, tags=other_host(100)).info.run_id
    assert beat(client, now=NOW) == 1
    tags = {run_id: client.get_run(run_id).data.tags[HEARTBEAT_TAG] for run_id in (mine, ended, theirs)}
    assert tags == {mine: stamp(0), ended: stamp(100), theirs: stamp(100)}


BEATING = """
import sys, time
from mlflow.tracking import MlflowClient
import mlflow
from pipelines.tracking.run_liveness import liveness_tags
mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
experiment = client.create_experiment("e", artifact_location=sys.argv[2])
run = client.create_run(experiment, tags=liveness_tags())
print(run.info.run_id, flush=True)
time.sleep(600)
"""


def test_a_living_process_renews_its_runs_heartbeat(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**isolated_env(tmp_path), "KDFLOW_HEARTBEAT_S": "0.5"}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BEATING), uri, (tmp_path / "artifacts").as_uri()],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = proc.stdout.readline().strip()
        client = MlflowClient(uri)
        first = client.get_run(run_id).data.tags[HEARTBEAT_TAG]
        assert client.get_run(run_id).data.tags[HEARTBEAT_EVERY_TAG] == "0.5"
        while client.get_run(run_id).data.tags[HEARTBEAT_TAG] == first:  # renewed while the process lives
            assert proc.poll() is None
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()


def test_a_bad_heartbeat_setting_is_refused_before_any_work(tmp_path):
    env = {**isolated_env(tmp_path), "KDFLOW_HEARTBEAT_S": "soon"}
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "KDFLOW_HEARTBEAT_S='soon'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "mlruns").exists()
