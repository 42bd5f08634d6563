"""`kdflow serve`, `kdflow deploy` and `kdflow ui`: the commands that talk to long-lived servers."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_PREFECT_PORT, DEFAULT_MLFLOW_PORT = 4200, 5000
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_PREFECT_PORT}/api"


def add_server_commands(commands) -> None:
    serve = commands.add_parser(
        "serve", help="register the deployments with a Prefect server and run what it schedules"
    )
    serve.add_argument("--limit", type=int, default=None, help="most flow runs at the same time (default: no limit)")
    serve.set_defaults(handler=serve_command)

    deploy = commands.add_parser(
        "deploy", help="create the deployments on a work pool, for `prefect worker start --pool NAME`"
    )
    deploy.add_argument("--pool", required=True, help="work pool name; created (process type) if missing")
    deploy.add_argument(
        "--working-dir",
        default=".",
        help="folder the runs execute in on the worker host, holding the default stores mlruns/ (default: this folder)",
    )
    deploy.set_defaults(handler=deploy_command)

    ui = commands.add_parser("ui", help="start the Prefect UI and the MLflow UI on this pipeline's stores")
    ui.add_argument("--prefect-port", type=int, default=DEFAULT_PREFECT_PORT)
    ui.add_argument("--mlflow-port", type=int, default=DEFAULT_MLFLOW_PORT)
    ui.add_argument("--store-dir", default="mlruns", help="folder of the local stores (runtime.store_dir)")
    ui.set_defaults(handler=ui_command)


def connect_prefect(command: str) -> str | None:
    """The Prefect API to use (PREFECT_API_URL, else the `kdflow ui` server); None, with a message, if none answers."""
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL  # a URL from the user's Prefect profile also counts

        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value() or DEFAULT_API_URL
    url = os.environ["PREFECT_API_URL"].rstrip("/")
    from flows.local_ui import healthy

    if not healthy(f"{url}/health"):
        print(
            f"kdflow {command}: no Prefect server answers at {url}; start one with `kdflow ui` "
            f"(or `prefect server start`) or point PREFECT_API_URL at yours",
            file=sys.stderr,
        )
        return None
    return url


def serve_command(args: argparse.Namespace) -> int:
    if connect_prefect("serve") is None:
        return 1
    from flows.deployments import DEPLOYMENTS, serve_all

    print(
        f"kdflow serve: serving {', '.join(d.name for d in DEPLOYMENTS)} from {os.environ['PREFECT_API_URL']}; "
        "trigger runs from the Prefect UI; Ctrl-C stops",
        flush=True,
    )
    serve_all(limit=args.limit)
    return 0


def deploy_command(args: argparse.Namespace) -> int:
    if connect_prefect("deploy") is None:
        return 1
    from flows.deployments import deploy_all, ensure_process_pool

    created = ensure_process_pool(args.pool)
    print(f"work pool {args.pool!r} ({'created, process type' if created else 'exists'})")
    working_dir = os.path.abspath(args.working_dir)
    for name in deploy_all(args.pool, working_dir):
        print(f"deployment {name} on {args.pool!r}, running in {working_dir}")
    print(f"Start a worker on each machine that should run them:  prefect worker start --pool {args.pool}")
    return 0


def ui_command(args: argparse.Namespace) -> int:
    from flows.local_ui import UiError, run_ui
    from pipelines.config import PipelineConfig, RuntimeConfig
    from pipelines.tracking import tracking_uri

    uri = tracking_uri(PipelineConfig(runtime=RuntimeConfig(store_dir=args.store_dir)))
    backend = None if uri.startswith(("http://", "https://")) else uri
    if backend is None:
        print(f"MLflow runs go to the tracking server {uri}: its UI is there")
    try:
        return run_ui(args.prefect_port, args.mlflow_port, backend, out=lambda line: print(line, flush=True))
    except UiError as e:
        print(f"kdflow ui: {e}", file=sys.stderr)
        return 1
