"""Scale-out on real servers: PostgreSQL, a Prefect server on it, an MLflow tracking server on it, two workers.

The pipeline fans its tuning out to two runs of the tune-worker deployment on a process work pool;
the trials share one Optuna study on PostgreSQL and are nested runs on the MLflow server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, TINY, isolated_env
from tests.loopback_servers import PG_BIN, Postgres, Processes, free_port, wait_http

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or not shutil.which("psql"),
    reason="PostgreSQL is not installed (.ci/run installs it with apt)",
)

POOL = "kdflow-test-pool"
State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """PostgreSQL + Prefect server + MLflow server + a process pool with two single-slot workers."""
    home = tmp_path_factory.mktemp("scale-out")
    procs, pg = Processes(home / "logs"), Postgres()
    try:
        pg.start()
        prefect_port, mlflow_port = free_port(), free_port()
        env = isolated_env(home)
        env.update(
            PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
            MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        )
        server_env = {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": pg.url("prefect", "postgresql+asyncpg"),
            "PREFECT_UI_ENABLED": "false",
        }
        prefect = procs.start(
            "prefect-server",
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            server_env,
        )
        mlflow = procs.start(
            "mlflow-server",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                pg.url("mlflow"),
                "--artifacts-destination",
                str(home / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            env,
        )
        wait_http(f"http://127.0.0.1:{prefect_port}/api/health", prefect, prefect.log)
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", mlflow, mlflow.log)
        subprocess.run(
            ["prefect", "work-pool", "create", POOL, "--type", "process"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [sys.executable, "-m", "flows.tune_worker_deployment", "--pool", POOL],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=180,
        )
        # A worker host's environment: where the stores are, the password only here (never a flow parameter).
        worker_env = {**env, "KDFLOW_OPTUNA_STORAGE": pg.url("optuna")}
        workers = [
            procs.start(
                f"worker-{i}",
                ["prefect", "worker", "start", "--pool", POOL, "--name", f"worker-{i}", "--limit", "1"],
                worker_env,
                cwd=home,
            )
            for i in (1, 2)
        ]
        yield {
            "home": home,
            "env": env,
            "pg": pg,
            "workers": workers,
            "mlflow": env["MLFLOW_TRACKING_URI"],
            "procs": procs,
        }
    finally:
        procs.stop_all()
        pg.stop()


def pipeline_cmd(cluster, study: str, trials: int, epochs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows.cli",
        "run",
        *TINY,
        "--output",
        str(cluster["home"] / f"{study}.json"),
        "--set",
        f"tune.n_trials={trials}",
        "--set",
        f"tune.epochs={epochs}",
        "--set",
        "tune.pruner=none",
        "--set",
        f"tune.study_name={study}",
        "--set",
        "tune.n_workers=2",
        "--set",
        "tune.deployment=tune-worker/kdflow",
        "--set",
        "tune.heartbeat_seconds=1",
        "--set",
        "tune.grace_seconds=4",
        "--set",
        f"tune.storage={cluster['pg'].url('optuna')}",  # with its password: must never be logged
    ]


def study_of(cluster, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=cluster["pg"].url("optuna"))


def assert_trials_are_nested_runs(cluster, study: optuna.Study, summary: dict) -> MlflowClient:
    client = MlflowClient(cluster["mlflow"])
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == summary["mlflow"]["parent_run_id"]
        assert (
            run.data.tags["kdflow.host"] == trial.user_attrs["host"]
            and run.data.tags["kdflow.pid"] == trial.user_attrs["pid"]
        )
        assert run.data.tags["kdflow.device"] == "cpu"
        assert run.info.status == ("FINISHED" if trial.state == State.COMPLETE else "FAILED")
    return client


def assert_password_never_logged(cluster, client: MlflowClient, summary: dict, *texts: str) -> None:
    secret = cluster["pg"].password
    assert all(secret not in text for text in texts)
    assert secret not in json.dumps(summary)
    for run in client.search_runs([summary["mlflow"]["experiment_id"]], max_results=500):
        assert secret not in json.dumps([run.data.params, run.data.tags])
    request = urllib.request.Request(
        cluster["env"]["PREFECT_API_URL"] + "/flow_runs/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        runs = json.loads(r.read())
    assert len(runs) >= 3 and secret not in json.dumps([run["parameters"] for run in runs])  # pipeline + 2 tune-workers


@pytest.fixture(scope="module")
def killed_run(cluster):
    """One pipeline run with two tuning workers; one worker's trial process gets SIGKILL mid-trial."""
    pipeline = subprocess.Popen(
        pipeline_cmd(cluster, "sigkill", trials=4, epochs=10),
        cwd=cluster["home"],
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    cluster["procs"].procs.append(pipeline)  # killed with the rest if anything fails
    victim = None
    deadline = time.monotonic() + 500
    while victim is None and time.monotonic() < deadline and pipeline.poll() is None:
        time.sleep(0.3)
        try:
            running = study_of(cluster, "sigkill").get_trials(states=(State.RUNNING,))
        except KeyError:  # the study does not exist yet
            continue
        # Mid-trial: it has reported at least one epoch; kill the first worker that got that far.
        started = [t for t in running if "mlflow_run_id" in t.user_attrs and t.intermediate_values]
        if started:
            victim = started[0]
            os.kill(int(victim.user_attrs["pid"]), signal.SIGKILL)
    output, _ = pipeline.communicate(timeout=600)
    assert victim is not None, f"no trial was seen running:\n{output[-4000:]}"
    assert pipeline.returncode == 0, output[-4000:]
    summary = json.loads((cluster["home"] / "sigkill.json").read_text())
    return {"victim": victim, "output": output, "summary": summary, "study": study_of(cluster, "sigkill")}


def test_two_pool_workers_share_one_study_and_log_nested_runs(cluster, killed_run):
    study, summary = killed_run["study"], killed_run["summary"]
    assert sum(t.state == State.COMPLETE for t in study.trials) >= 4 == summary["trials"]["requested"]
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2 and all(w.startswith("prefect:") for w in workers)  # both pool workers ran trials
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2
    client = assert_trials_are_nested_runs(cluster, study, summary)
    assert summary["optuna"]["storage"].startswith("postgresql+psycopg2://***@")
    assert_password_never_logged(cluster, client, summary, killed_run["output"])


def test_a_killed_trial_is_failed_and_retried_and_the_study_completes(cluster, killed_run):
    study, summary, victim = killed_run["study"], killed_run["summary"], killed_run["victim"]
    states = {t.number: t.state for t in study.trials}
    assert states[victim.number] == State.FAIL
    assert sum(s == State.COMPLETE for s in states.values()) >= 4
    assert not [n for n, s in states.items() if s in (State.RUNNING, State.WAITING)]
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state == State.COMPLETE and retried[0].params == victim.params
    assert retried[0].user_attrs["worker"] != victim.user_attrs["worker"]  # the survivor ran it
    client = MlflowClient(cluster["mlflow"])
    dead_run = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["trial_state"] == "FAIL"
    assert not client.search_runs([summary["mlflow"]["experiment_id"]], "attributes.status = 'RUNNING'")
