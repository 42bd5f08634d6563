"""With a real Prefect server: `kdflow ingest --pipeline` emits kdflow.data.arrived naming the pipeline, and the
served `retrain-pipeline` deployment retrains that pipeline's champion; its scheduled run (pipeline `*`, what the
cron schedule starts) retrains every pipeline with unlearned batches."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
from conftest import TINY, isolated_env
from test_pipeline_retrain import write_digits_batch

from flows.retrain_pipeline import DEPLOYMENT_NAME

NAME = "kdflow-digits-student"
SERVE = """
import sys
from prefect import serve
from flows.retrain_pipeline import retrain_pipeline_flow, retrain_pipeline_options
serve(retrain_pipeline_flow.to_deployment(name="{name}", **retrain_pipeline_options(cron=None, store_dir=sys.argv[1])))
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


def test_the_arrival_event_and_the_scheduled_run_retrain_the_pipeline_champion(kdflow, tmp_path):
    proc, _ = kdflow("run", "--preset", "digits", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = str((tmp_path / "mlruns").resolve())
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(tmp_path)
    env["PREFECT_API_URL"] = url
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []

    def ingest(name: str, event: bool):
        run_env = env if event else isolated_env(tmp_path)  # no PREFECT_API_URL: stored, no event sent
        cmd = [sys.executable, "-m", "flows.cli", "ingest", name, "--pipeline", "digits", "--store", store]
        done = subprocess.run(cmd, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def completed_runs(deployment_id: str, wanted: int):
        def probe():
            runs = api(url, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}})
            bad = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED", "CANCELLED")]
            if bad:
                raise AssertionError(f"flow run {bad[0]['state_type']}:\n" + (logs / "serve.log").read_text()[-3000:])
            done = [r for r in runs if r["state_type"] == "COMPLETED"]
            return done if len(done) >= wanted else None

        return wait_for(f"{wanted} completed run(s) of the deployment", probe, 300, procs)

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
        serve_cmd = [sys.executable, "-c", SERVE.format(name=DEPLOYMENT_NAME), store]
        served = subprocess.Popen(
            serve_cmd, cwd=tmp_path, env=env, stdout=open(logs / "serve.log", "w"), stderr=subprocess.STDOUT
        )
        procs.append(served)
        deployment = wait_for(
            "the deployment", lambda: api(url, f"/deployments/name/{DEPLOYMENT_NAME}/{DEPLOYMENT_NAME}"), 120, procs
        )
        wait_for("the trigger's automation", lambda: api(url, "/automations/filter", {}), 60, procs)

        write_digits_batch(tmp_path / "b1.npz", 0, 200, (0, 1))
        assert "event kdflow.data.arrived sent" in ingest("b1.npz", event=True)
        (run,) = completed_runs(deployment["id"], 1)
        assert run["parameters"]["pipeline"] == "digits" and run["parameters"]["store_dir"] == store
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        client = mlflow.MlflowClient()
        first = client.get_model_version(NAME, "2").tags["kdflow.learned_batches"].split(",")
        assert len(first) == 1 and first[0].startswith("digits/00001-")

        # a batch stored without an event: the scheduled run (the deployment's own parameters) finds and learns it
        write_digits_batch(tmp_path / "b2.npz", 200, 200, (1, 0))
        ingest("b2.npz", event=False)
        api(url, f"/deployments/{deployment['id']}/create_flow_run", {})
        runs = completed_runs(deployment["id"], 2)
        assert {r["parameters"]["pipeline"] for r in runs} == {"digits", "*"}
        learned = client.get_model_version(NAME, "3").tags["kdflow.learned_batches"].split(",")
        assert learned[-1].startswith("digits/00002-") and first[0] in learned
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
