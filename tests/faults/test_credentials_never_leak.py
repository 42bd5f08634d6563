"""No password from a store URI appears in kdflow's output, logs, MLflow params/tags, Prefect's database or files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.stores.credentials import CredentialsMasked, mask_credentials
from tests.conftest import isolated_env
from tests.loopback_servers import PG_BIN, Postgres, free_port

SECRET = "S3cretPW2"
TINY = [
    *("--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1"),
    *("--set", "tune.n_trials=1", "--set", "tune.epochs=1"),
]


def kdflow_run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flows.cli", "run", *TINY, *args]
    return subprocess.run(cmd, cwd=folder, env=isolated_env(folder), capture_output=True, text=True, timeout=600)


def files_with_secret(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_an_unreachable_tracking_server_fails_in_one_line_without_its_password(tmp_path):
    uri = f"http://kd:{SECRET}@127.0.0.1:{free_port()}"  # nothing listens there
    proc = kdflow_run(tmp_path, "--set", f"runtime.tracking_uri={uri}")
    assert proc.returncode == 2, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not reachable" in lines[0] and "http://***@127.0.0.1" in lines[0], proc.stderr
    assert files_with_secret(tmp_path) == []
    assert not (tmp_path / "mlruns" / "cache").exists()  # failed before any data was prepared


def test_errors_quoting_a_url_are_masked_with_the_same_retry_verdict():
    from flows.masked_errors import credentials_masked
    from flows.retries import is_transient

    with pytest.raises(CredentialsMasked) as caught, credentials_masked():
        try:
            raise ConnectionRefusedError(f"postgresql://kd:{SECRET}@db/optuna refused")
        except ConnectionRefusedError as e:
            raise RuntimeError(f"API request to http://kd:{SECRET}@h:1/api failed") from e
    assert SECRET not in str(caught.value) and "http://***@h:1/api" in str(caught.value)
    assert caught.value.__suppress_context__ and is_transient(caught.value)  # the refused connection is retried
    assert mask_credentials(f"token={SECRET} and postgresql://127.0.0.1/db?password={SECRET}") == (
        f"token={SECRET} and postgresql://127.0.0.1/db?password=***"
    )


@pytest.mark.skipif(not (PG_BIN / "initdb").exists() or not shutil.which("psql"), reason="PostgreSQL is not installed")
def test_a_run_with_passwords_in_both_store_urls_stores_and_prints_none(tmp_path):
    pg = Postgres(password=SECRET).start()
    try:
        tracking, storage = pg.url("mlflow"), pg.url("optuna")
        proc = kdflow_run(tmp_path, "--set", f"runtime.tracking_uri={tracking}", "--set", f"tune.storage={storage}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert SECRET not in proc.stdout + proc.stderr
        assert files_with_secret(tmp_path) == []  # Prefect's database, caches, artifacts, summaries
        client = MlflowClient(tracking)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) >= 5  # parent, teacher, baseline, trial, student, ...
        for run in runs:
            stored = " ".join(f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items())
            assert SECRET not in stored, run.info.run_name
        assert all(r.data.params.get("tune.storage", "") == "" for r in runs)  # moved to the environment
    finally:
        pg.stop()
