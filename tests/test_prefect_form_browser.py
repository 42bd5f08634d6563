"""The Prefect UI's Custom run form in a real browser: one field changed inside a section, every other field kept.

`kdflow ui` and `kdflow serve-flows` run as a user starts them; headless Chromium (Debian's `chromium`, driven by
Playwright) opens the distill-pipeline deployment, clicks Run > Custom run, types a bad value (shown at its field,
nothing sent), then student.train.epochs = 2, submits, and the run's MLflow params and student size are checked
against the preset's. Screenshots of the form and the run are kept under test-artifacts/prefect-form/ on failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate

from kdcore.models import build_model, count_parameters
from pipelines.config.overrides import resolve_config
from pipelines.tracking.runs import loggable_params
from tests.conftest import ROOT, isolated_env
from tests.test_prefect_deployment import DEPLOYMENT, free_port, kill_group, start, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts" / "prefect-form"


def needs_a_browser() -> None:
    missing = [
        name for name, ok in (("chromium", CHROMIUM), ("playwright", importlib.util.find_spec("playwright"))) if not ok
    ]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (apt-get install chromium; pip install -e '.[dev]')"
    if os.environ.get("CI"):  # CI installs both (.ci/run): a missing browser there is a failure, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def ui_and_flows(tmp_path):
    """`kdflow ui` on free ports and `kdflow serve-flows` on it, both in `tmp_path` (the store is its mlruns/)."""
    needs_a_browser()  # before starting servers it would not use
    prefect_port, mlflow_port = free_port(), free_port()
    env = isolated_env(tmp_path)
    ui_log, serve_log = tmp_path / "ui.log", tmp_path / "serve.log"
    ui = start(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "ui",
            "--prefect-port",
            str(prefect_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        env,
        tmp_path,
        ui_log,
    )
    serve = None
    try:
        wait_until(lambda: "Press Ctrl-C" in ui_log.read_text(), "kdflow ui", 240, ui, ui_log)
        api = f"http://127.0.0.1:{prefect_port}/api"
        serve = start(
            [sys.executable, "-m", "flows.cli", "serve-flows"],
            {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
            tmp_path,
            serve_log,
        )
        with SyncPrefectClient(api) as client:
            deployment = wait_until(
                lambda: _deployment(client), "the distill-pipeline deployment", 180, serve, serve_log
            )
            yield f"http://127.0.0.1:{prefect_port}", client, deployment, serve_log
    finally:
        for proc in (serve, ui):
            if proc is not None:
                kill_group(proc)


def _deployment(client):
    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except Exception:
        return None


def field(scope, *labels: str):
    """The input of a form field by its labels, section by section: field(page, "Student", "Train", "Epochs")."""
    for label in labels:
        scope = scope.locator(
            f"xpath=.//label[normalize-space()='{label} (Optional)']/ancestor::div[contains(@class,'group')][1]"
        ).first
    return scope.locator("input").first


def test_custom_run_form_changes_one_nested_field_and_keeps_every_other(ui_and_flows, tmp_path):
    from playwright.sync_api import sync_playwright

    ui, client, deployment, serve_log = ui_and_flows
    store = tmp_path / "mlruns"
    # The deployment's defaults keep the run tiny (as a team may set them); the student section stays the preset's.
    defaults = {
        "teacher": {"width": 8, "train": {"epochs": 1}},
        "tune": {"n_trials": 2, "epochs": 1},
        "runtime": {"store_dir": str(store)},
    }
    client.update_deployment(deployment.id, DeploymentUpdate(parameters={"preset": "digits", "config": defaults}))

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        sent = []
        page.on("request", lambda r: sent.append(r.post_data) if r.url.endswith("/create_flow_run") else None)
        try:
            page.goto(f"{ui}/v2/deployments/deployment/{deployment.id}", wait_until="networkidle")
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Custom run").click()
            epochs = field(page, "Student", "Train", "Epochs")
            epochs.wait_for()

            epochs.fill("0")  # below the field's minimum: refused at the field, nothing sent
            page.get_by_role("button", name="Submit").click()
            assert "greater than or equal to 1" in epochs.evaluate("e => e.validationMessage")
            assert sent == []

            epochs.fill("2")
            epochs.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "form.png"))
            for _ in range(5):  # 503: Prefect's SQLite was busy (a loaded box); its UI says so, a person submits again
                with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as created:
                    page.get_by_role("button", name="Submit").click()
                if created.value.status != 503:
                    break
                page.wait_for_timeout(2000)
            assert created.value.status == 201, created.value.text()
            run_id = created.value.json()["id"]

            def finished():
                run = client.read_flow_run(run_id)
                return run if run.state is not None and run.state.is_final() else None

            run = wait_until(finished, "the flow run started from the form", 600, log=serve_log)
            page.goto(f"{ui}/v2/runs/flow-run/{run_id}", wait_until="networkidle")
            page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
            assert run.state.is_completed(), f"{run.state.message}\n{serve_log.read_text()[-3000:]}"
            assert run.parameters["config"]["student"] == {"train": {"epochs": 2}}  # what the form sent

            mlflow = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
            experiment = mlflow.get_experiment_by_name("kdflow-digits")
            (parent,) = mlflow.search_runs([experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{run.id}'")
            expected = resolve_config("digits", {**defaults, "student": {"train": {"epochs": 2}}})
            logged = {k: parent.data.params.get(k) for k in loggable_params(expected)}
            assert logged == loggable_params(expected)  # every other field is the preset's (or the deployment's)
            assert logged["student.width"] == "32" and logged["tune.epochs"] == "1"

            (student,) = mlflow.search_runs(
                [experiment.experiment_id],
                f"tags.mlflow.parentRunId = '{parent.info.run_id}' AND attributes.run_name = 'student'",
            )
            preset = resolve_config("digits")
            preset_size = count_parameters(build_model(preset.student.arch, (1, 8, 8), 10, **preset.student.options()))
            assert student.data.metrics["parameters"] == preset_size  # 2,410: the preset's width, not the model's
            shutil.rmtree(ARTIFACTS, ignore_errors=True)  # kept only when the test fails
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "at-failure.png"), full_page=True)
            print(f"screenshots of the form and the run: {ARTIFACTS}")
            raise
        finally:
            browser.close()
