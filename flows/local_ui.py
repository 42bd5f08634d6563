"""`kdflow ui`: a Prefect server and the MLflow UI on the pipeline's own stores, stopped together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

HOST = "127.0.0.1"  # loopback only: these UIs have no authentication
DEFAULT_MLFLOW_PORT = 5000  # where `kdflow ui` serves the local store's MLflow UI; run summaries link there


class UiError(RuntimeError):
    """One line for the user: which server could not start and what to do."""


@dataclass
class Server:
    name: str
    command: list[str]
    health_url: str
    address: str
    env: dict[str, str] = field(default_factory=dict)  # set on top of the caller's environment
    process: subprocess.Popen | None = None
    log: object = None  # its output, kept in an unnamed temporary file (a pipe could fill and block it)

    def last_error(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "no message"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((HOST, port)) == 0


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def servers(prefect_port: int, mlflow_port: int, backend_store_uri: str | None) -> list[Server]:
    out = [
        Server(
            "Prefect",
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(prefect_port)],
            f"http://{HOST}:{prefect_port}/api/health",
            f"http://{HOST}:{prefect_port}",
            # the UI's pages call this API; else they call PREFECT_API_URL or port 4200, not this server
            env={"PREFECT_UI_API_URL": f"http://{HOST}:{prefect_port}/api"},
        )
    ]
    if backend_store_uri is not None:  # None: runs go to a tracking server that already has its UI
        out.append(
            Server(
                "MLflow",
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--host",
                    HOST,
                    "--port",
                    str(mlflow_port),
                    "--backend-store-uri",
                    backend_store_uri,
                    "--workers",
                    "1",
                ],
                f"http://{HOST}:{mlflow_port}/health",
                f"http://{HOST}:{mlflow_port}",
            )
        )
    return out


def stop(all_servers: list[Server], grace_seconds: float = 15) -> None:
    """SIGTERM each server's whole process group, then SIGKILL what is left: no orphans."""
    running = [s for s in all_servers if s.process is not None and s.process.poll() is None]
    for s in running:
        _signal_group(s.process, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for s in running:
        try:
            s.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for s in all_servers:  # also children that outlived their leader
        if s.process is not None:
            _signal_group(s.process, signal.SIGKILL)
            s.process.wait()
        if s.log is not None:
            s.log.close()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_ui(
    prefect_port: int,
    mlflow_port: int,
    backend_store_uri: str | None,
    env: dict | None = None,
    startup_seconds: float = 120,
    out=print,
) -> int:
    all_servers = servers(prefect_port, mlflow_port, backend_store_uri)
    for s in all_servers:
        port = int(s.address.rsplit(":", 1)[1])
        if port_in_use(port):
            raise UiError(
                f"port {port} on {HOST} is already in use (another {s.name} server?); stop it or pick another port"
            )

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    # `kill` stops both servers as Ctrl-C does; SIGINT is set too, because a process started in the background by a
    # non-interactive shell inherits it ignored, and Python then never raises KeyboardInterrupt
    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for s in all_servers:  # own session: a Ctrl-C reaches us, and we stop each group ourselves
            s.log = tempfile.TemporaryFile()
            s.process = subprocess.Popen(
                s.command,
                env={**(os.environ if env is None else env), **s.env},
                start_new_session=True,
                stdout=s.log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + startup_seconds
        for s in all_servers:
            while not healthy(s.health_url):
                if s.process.poll() is not None:
                    raise UiError(f"the {s.name} server exited during start-up: {s.last_error()}")
                if time.monotonic() > deadline:
                    raise UiError(f"the {s.name} server did not answer {s.health_url} within {startup_seconds:.0f} s")
                time.sleep(0.5)
        for s in all_servers:
            out(f"{s.name} UI: {s.address}")
        out(f"Runs reach this Prefect server with: export PREFECT_API_URL={all_servers[0].address}/api")
        out("Press Ctrl-C to stop both.")
        while True:
            for s in all_servers:
                if s.process.poll() is not None:
                    raise UiError(f"the {s.name} server stopped unexpectedly (exit status {s.process.returncode})")
            time.sleep(0.5)
    except KeyboardInterrupt:
        out("Stopping ...")
        return 0
    finally:
        stop(all_servers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out("Stopped.")  # both servers and their process groups are gone
