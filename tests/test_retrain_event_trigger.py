"""With a real Prefect server: `kdflow ingest` emits kdflow.data.arrived and the served deployment retrains."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import numpy as np
from conftest import isolated_env

from flows.retrain import DEPLOYMENT_NAME, retrain_deployment

SERVE = """
from prefect import serve
from flows.retrain import retrain_deployment
serve(retrain_deployment(cron=None, mode="student_only", settings={"epochs": 2, "student_width": 8, "lr": 0.05}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or "null")


def wait_for(what: str, probe, timeout: float, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(
                    f"{what}: {p.args[1:4]} exited early with status {p.returncode} (its log is under logs/)"
                )
        try:
            value = probe()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_deployment_has_event_trigger_and_cron():
    d = retrain_deployment(cron="*/30 * * * *", stream="cams")
    assert d.name == DEPLOYMENT_NAME
    (trigger,) = d.triggers
    assert trigger.expect == {"kdflow.data.arrived"}
    assert trigger.match.root == {"prefect.resource.id": "kdflow.stream.cams"}
    assert trigger.parameters["stream"] == "{{ event.resource.name }}"
    assert d.schedules[0].schedule.cron == "*/30 * * * *"


def test_arrival_event_starts_the_retraining_deployment(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(tmp_path)
    env["PREFECT_API_URL"] = url
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=open(logs / "server.log", "w"),
            stderr=subprocess.STDOUT,
        )
        procs.append(server)
        wait_for("the Prefect server", lambda: api(url, "/health") is True, 180, procs)
        served = subprocess.Popen(
            [sys.executable, "-c", SERVE],
            cwd=tmp_path,
            env=env,
            stdout=open(logs / "serve.log", "w"),
            stderr=subprocess.STDOUT,
        )
        procs.append(served)
        deployment = wait_for(
            "the deployment", lambda: api(url, f"/deployments/name/{DEPLOYMENT_NAME}/{DEPLOYMENT_NAME}"), 120, procs
        )
        wait_for("the trigger's automation", lambda: api(url, "/automations/filter", {}), 60, procs)

        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(0, 1, (40, 6)), rng.normal(3, 1, (40, 6))]).astype(np.float32)
        np.savez(tmp_path / "batch.npz", inputs=x, labels=np.repeat([0, 1], 40))
        ingest = subprocess.run(
            [sys.executable, "-m", "flows.cli", "ingest", "batch.npz", "--stream", "cams", "--store", "store"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ingest.returncode == 0, ingest.stderr
        assert "event kdflow.data.arrived sent" in ingest.stdout
        assert "Still processing items" not in ingest.stderr + ingest.stdout  # Prefect's shutdown note, silenced

        def finished_run():
            runs = api(url, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}})
            if runs and runs[0]["state_type"] in ("FAILED", "CRASHED", "CANCELLED"):
                raise AssertionError(f"flow run {runs[0]['state_type']}:\n" + (logs / "serve.log").read_text()[-3000:])
            return runs[0] if runs and runs[0]["state_type"] == "COMPLETED" else None

        run = wait_for("a completed run of the deployment", finished_run, 300, procs)
        assert run["parameters"]["stream"] == "cams"
        assert run["parameters"]["store_dir"] == str((tmp_path / "store").resolve())
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
        champion = mlflow.MlflowClient().get_model_version_by_alias("kdflow-cams-lifelong", "champion")
        assert champion.tags["kdflow.learned_batches"].startswith("00001-")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
