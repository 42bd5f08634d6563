"""A real Prefect server on loopback, `kdflow serve-flows`, runs triggered through the API the way the UI does.

Every process started here runs in its own process group and is killed with it, also on failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.exceptions import PrefectHTTPStatusError

from tests.conftest import isolated_env

DEPLOYMENT = "distill-pipeline/distill-pipeline"
# Tiny but complete: every stage runs, on the real code path.
TINY = {
    "teacher": {"width": 8, "train": {"epochs": 1}},
    "student": {"width": 16, "train": {"epochs": 1}},
    "tune": {"n_trials": 2, "epochs": 1},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
    except ProcessLookupError:
        pass


def wait_until(check, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free loopback port, in its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    proc = start(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        isolated_env(home),
        home,
        log,
    )
    try:
        client = SyncPrefectClient(url)
        with client:
            wait_until(lambda: _healthy(client), "the Prefect server's /api/health", 180, proc, log)
        yield url
    finally:
        kill_group(proc)


def _healthy(client) -> bool:
    try:
        return client.api_healthcheck() is None
    except Exception:
        return False


@pytest.fixture(scope="module")
def client(prefect_server):
    with SyncPrefectClient(prefect_server) as c:
        yield c


@pytest.fixture(scope="module")
def served(prefect_server, client, tmp_path_factory):
    """`kdflow serve-flows` in a subprocess, pointed at the server; yields the deployment once registered."""
    work = tmp_path_factory.mktemp("serve")
    env = isolated_env(work)
    env.update(PREFECT_API_URL=prefect_server, PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = work / "serve.log"
    proc = start([sys.executable, "-m", "flows.cli", "serve-flows"], env, work, log)
    try:
        yield wait_until(lambda: _deployment(client), "the distill-pipeline deployment", 180, proc, log), work, log
    finally:
        kill_group(proc)


def _deployment(client):
    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except Exception:
        return None


def trigger(client, deployment, parameters: dict):
    """What the UI's "Custom run" does: POST /deployments/{id}/create_flow_run with the form's values."""
    return client.create_flow_run_from_deployment(deployment.id, parameters=parameters)


def wait_for(client, flow_run, served_log: Path, timeout: float = 400):
    def final():
        run = client.read_flow_run(flow_run.id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_until(final, f"flow run {flow_run.name}", timeout, log=served_log)


def logs_of(client, flow_run) -> str:
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    return "\n".join(entry.message for entry in logs)


def config_with(store: Path, **sections) -> dict:
    config = {k: dict(v) for k, v in TINY.items()}
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    config["runtime"] = {"store_dir": str(store)}
    return config


def test_deployment_parameters_are_the_config_form(served):
    deployment, _, _ = served
    schema = deployment.parameter_openapi_schema
    assert deployment.enforce_parameter_schema is True
    assert schema["properties"]["preset"]["$ref"].endswith("/PresetName") or "allOf" in schema["properties"]["preset"]
    assert "digits" in schema["definitions"]["PresetName"]["enum"]
    assert schema["properties"]["config"]["description"].startswith("Fields to change from the preset")
    defs = schema["definitions"]
    n_trials = defs["TuneConfigOverrides"]["properties"]["n_trials"]
    assert (n_trials["type"], n_trials["minimum"], n_trials["maximum"]) == ("integer", 0, 10_000)  # no null toggle
    assert n_trials["title"] == "N trials" and "trials" in n_trials["description"]
    alpha = defs["DistillConfigOverrides"]["properties"]["alpha"]
    assert alpha["description"].startswith("KD: weight of the distillation term")
    assert defs["TuneConfigOverrides"]["properties"]["pruner"]["enum"] == ["median", "hyperband", "none"]
    assert "cnn_medium" in defs["TeacherConfigOverrides"]["properties"]["arch"]["enum"]
    assert defs["PipelineConfigOverrides"]["properties"]["teacher"]["description"]
    assert deployment.tags == ["kdflow"] and deployment.parameters == {"preset": "digits"}


@pytest.mark.parametrize(
    "config, field",
    [
        ({"distill": {"alpha": 1.5}}, "1.5"),
        ({"tune": {"n_trails": 3}}, "n_trails"),
        ({"runtime": {"device": "tpu"}}, "tpu"),
        ({"teacher": {"arch": "resnet9000"}}, "resnet9000"),
    ],
)
def test_the_server_refuses_parameters_outside_the_form(served, client, config, field):
    deployment, _, _ = served
    with pytest.raises(PrefectHTTPStatusError) as e:
        trigger(client, deployment, {"config": config})
    assert e.value.response.status_code == 409 and field in e.value.response.text


def test_a_bad_combination_fails_the_run_before_any_work(served, client, tmp_path):
    deployment, _, log = served
    store = tmp_path / "store"
    run = wait_for(client, trigger(client, deployment, {"config": config_with(store, student={"arch": "lstm"})}), log)
    assert run.state.is_failed()  # the form offers every model; the preset's data decides which fit
    assert "student.arch=lstm does not fit data.dataset=digits; choose an image model (cnn_medium" in run.state.message
    assert not store.exists()  # nothing was prepared, trained or logged
    assert client.read_task_runs() == [] or all(t.flow_run_id != run.id for t in client.read_task_runs())


@pytest.fixture(scope="module")
def first_run(served, client, tmp_path_factory):
    """One run triggered with the form's values; the next test reruns it with another student search."""
    deployment, _, log = served
    store = tmp_path_factory.mktemp("runs") / "store"
    run = wait_for(client, trigger(client, deployment, {"preset": "digits", "config": config_with(store)}), log)
    assert run.state.is_completed(), f"{run.state.message}\n{log.read_text()[-3000:]}"
    return run, store


def test_ui_triggered_run_builds_the_mlflow_tree_and_the_summary_artifact(first_run, client):
    run, store = first_run
    assert run.parameters["preset"] == "digits" and run.parameters["config"]["tune"]["n_trials"] == 2

    mlflow = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("kdflow-digits")
    parents = mlflow.search_runs([experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{run.id}'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["tune.n_trials"] == "2" and parent.data.params["teacher.width"] == "8"
    assert parent.data.params["model.device"] == "cpu" and parent.data.params["runtime.device"] == "auto"
    assert parent.data.tags["kdflow.teacher_reused"] == "false"
    children = {
        r.info.run_name: r
        for r in mlflow.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    }
    assert set(children) == {"teacher", "baseline", "trial-0", "trial-1", "student", "evaluation"}
    assert parent.data.tags["kdflow.teacher_run_id"] == children["teacher"].info.run_id
    test_acc = children["evaluation"].data.metrics

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
    )
    by_type = {}
    for a in artifacts:
        by_type.setdefault(a.type, []).append(a)
    (summary,) = by_type["markdown"]
    assert summary.key == "kdflow-digits-summary"
    for role, arch in (("teacher", "cnn_medium"), ("baseline", "mlp"), ("student", "mlp")):
        assert f"| {role} | {arch} | {test_acc[f'test/{role}_acc']:.2%} |" in summary.data
        # a SQLite store is what `kdflow ui` shows: each run is a link into its MLflow UI
        assert f"/#/experiments/{parent.info.experiment_id}/runs/{children[role].info.run_id})" in summary.data
    for name in ("temperature", "alpha", "lr", "weight_decay"):
        assert f"| {name} |" in summary.data
    (progress,) = by_type["progress"]
    assert progress.data == 100.0 and progress.description.startswith("trial 2 of 2")
    (table,) = by_type["table"]
    assert all(children[f"trial-{n}"].info.run_id in table.data for n in (0, 1))


def test_different_student_search_trains_the_teacher_once(first_run, served, client):
    deployment, _, log = served
    _, store = first_run
    second = wait_for(
        client,
        trigger(
            client,
            deployment,
            {"config": config_with(store, tune={"seed": 1, "space": {"alpha": {"low": 0.5, "high": 0.9}}})},
        ),
        log,
    )
    assert second.state.is_completed(), log.read_text()[-3000:]

    mlflow = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("kdflow-digits")
    teachers = mlflow.search_runs([experiment.experiment_id], "attributes.run_name = 'teacher'")
    assert len(teachers) == 1  # two pipeline runs, one teacher
    (parent,) = mlflow.search_runs([experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{second.id}'")
    assert parent.data.tags["kdflow.teacher_reused"] == "true"
    assert parent.data.tags["kdflow.teacher_run_id"] == teachers[0].info.run_id
    assert "teacher: reusing cnn_medium from MLflow run " + teachers[0].info.run_id in logs_of(client, second)
    studies = {
        r.data.tags.get("optuna.study")
        for r in mlflow.search_runs([experiment.experiment_id], "attributes.run_name LIKE 'trial-%'")
    }
    assert len(studies) == 2  # a new student search: a new study, same teacher


def test_transient_failures_are_retried_by_prefect_and_user_errors_are_not(prefect_server):
    from prefect import flow, task
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import distill_pipeline as pipeline
    from flows.retries import retry_on_transient
    from pipelines.config.schema import ConfigError

    attempts = {"transient": 0, "user": 0}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_transient)
    def flaky():
        attempts["transient"] += 1
        if attempts["transient"] == 1:
            raise ConnectionRefusedError("tracking server restarting")
        return "logged"

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_transient)
    def misconfigured():
        attempts["user"] += 1
        raise ConfigError("invalid config: distill.alpha: Input should be less than or equal to 1")

    @flow
    def probe():
        ok = flaky()
        try:
            misconfigured()
        except ConfigError:
            return ok
        return "not raised"

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        assert probe() == "logged"
    assert attempts == {"transient": 2, "user": 1}
    for stage in (pipeline.prepare_data, pipeline.train_teacher, pipeline.tune_student, pipeline.register):
        assert stage.retries == 2 and stage.retry_condition_fn is retry_on_transient


def test_deploy_creates_the_process_pool_and_the_deployments_on_it(prefect_server, client, tmp_path, served):
    # Last in this file: it moves the served deployment onto the pool.
    env = isolated_env(tmp_path)
    env["PREFECT_API_URL"] = prefect_server
    cmd = [sys.executable, "-m", "flows.cli", "deploy", "--pool", "gpu-hosts"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "work pool 'gpu-hosts' (created, process type)" in proc.stdout
    assert "prefect worker start --pool gpu-hosts" in proc.stdout
    pool = client.read_work_pool("gpu-hosts")
    assert pool.type == "process"
    deployment = client.read_deployment_by_name(DEPLOYMENT)
    assert deployment.work_pool_name == "gpu-hosts"
    assert deployment.entrypoint == "flows.distill_pipeline.distill_pipeline"  # importable wherever kdflow is installed
    assert deployment.job_variables == {"working_dir": str(tmp_path)}  # not a throw-away temporary folder
    assert deployment.enforce_parameter_schema and "config" in deployment.parameter_openapi_schema["properties"]

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import ensure_process_pool

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        assert ensure_process_pool("gpu-hosts") is False  # a second deploy leaves the pool as it is


def test_serve_without_a_server_says_how_to_start_one(tmp_path):
    env = isolated_env(tmp_path)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    for command in ("serve-flows", "serve"):  # the old name still works, and names the new one
        proc = subprocess.run(
            [sys.executable, "-m", "flows.cli", command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1
        if command == "serve":
            assert lines.pop(0) == "kdflow serve is now `kdflow serve-flows` (it serves Prefect flows, not models)"
        assert lines[0].startswith(
            f"kdflow serve-flows: no Prefect server answers at {env['PREFECT_API_URL']}; start one with `kdflow ui`"
        )
