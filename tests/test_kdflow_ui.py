"""`kdflow ui`: both servers on loopback on the pipeline's stores; one Ctrl-C stops both, no orphans."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from flows.local_ui import port_in_use
from tests.conftest import isolated_env
from tests.test_prefect_deployment import free_port, kill_group


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read() or b"null")


def test_ui_serves_prefect_and_mlflow_on_the_pipeline_store_and_stops_both(tmp_path):
    store = tmp_path / "mlruns"
    store.mkdir()
    MlflowClient(f"sqlite:///{store / 'mlflow.db'}").create_experiment("kdflow-digits")  # what a pipeline run leaves
    prefect_port, mlflow_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "ui",
        "--prefect-port",
        str(prefect_port),
        "--mlflow-port",
        str(mlflow_port),
    ]
    out = tmp_path / "ui.log"
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        start_new_session=True,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        text = out.read_text()
        assert f"Prefect UI: http://127.0.0.1:{prefect_port}" in text
        assert f"MLflow UI: http://127.0.0.1:{mlflow_port}" in text
        assert get_json(f"http://127.0.0.1:{prefect_port}/api/health") is True
        # the UI's pages call this server's API, not PREFECT_API_URL's or port 4200's
        assert get_json(f"http://127.0.0.1:{prefect_port}/ui-settings")["api_url"] == (
            f"http://127.0.0.1:{prefect_port}/api"
        )
        found = get_json(
            f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=kdflow-digits"
        )
        assert found["experiment"]["name"] == "kdflow-digits"  # the same store the pipeline writes
        spawned = descendants(proc.pid)
        assert len(spawned) >= 2

        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        try:  # a hang guard, not a speed check; the log says whether Ctrl-C was seen at all
            assert proc.wait(timeout=60) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"kdflow ui did not exit within 60 s of Ctrl-C:\n{out.read_text()}") from None
        assert "Stopped." in out.read_text()
        time.sleep(1)
        assert [pid for pid in spawned if alive(pid)] == []
        assert not port_in_use(prefect_port) and not port_in_use(mlflow_port)
    finally:
        kill_group(proc)
        for pid in spawned:  # servers live in their own process groups
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_ui_refuses_a_busy_port_in_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "flows.cli", "ui", "--prefect-port", str(port), "--mlflow-port", str(free_port())],
            cwd=tmp_path,
            env=isolated_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"kdflow ui: port {port} on 127.0.0.1 is already in use (another Prefect server?); stop it or pick another port"
    )
