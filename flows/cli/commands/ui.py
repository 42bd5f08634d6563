"""`kdflow ui`: the Prefect UI and the MLflow UI on this pipeline's stores, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from flows.cli.commands._prefect_api import DEFAULT_MLFLOW_PORT, DEFAULT_PREFECT_PORT


def add_parser(commands) -> None:
    ui = commands.add_parser("ui", help="start the Prefect UI and the MLflow UI on this pipeline's stores")
    ui.add_argument("--prefect-port", type=int, default=DEFAULT_PREFECT_PORT)
    ui.add_argument("--mlflow-port", type=int, default=DEFAULT_MLFLOW_PORT)
    ui.add_argument("--store-dir", default="mlruns", help="folder of the local stores (runtime.store_dir)")
    ui.set_defaults(handler=ui_command)


def ui_command(args: argparse.Namespace) -> int:
    from flows.local_ui import UiError, run_ui
    from pipelines.config.schema import PipelineConfig, RuntimeConfig
    from pipelines.tracking.runs import tracking_uri

    uri = tracking_uri(PipelineConfig(runtime=RuntimeConfig(store_dir=args.store_dir)))
    backend = None if uri.startswith(("http://", "https://")) else uri
    if backend is None:
        print(f"MLflow runs go to the tracking server {uri}: its UI is there")
    try:
        return run_ui(args.prefect_port, args.mlflow_port, backend, out=lambda line: print(line, flush=True))
    except UiError as e:
        print(f"kdflow ui: {e}", file=sys.stderr)
        return 1
