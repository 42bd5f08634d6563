"""The `kdflow` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from pipelines.config import ConfigError, load_config, preset_names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kdflow", description="Knowledge-distillation pipelines on Prefect, MLflow and Optuna."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the distill-pipeline flow once")
    run.add_argument("--preset", default="digits", help=f"preset name ({', '.join(preset_names())}) or a YAML file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set tune.n_trials=20 (repeatable)",
    )
    run.add_argument("--output", type=Path, help="also write the summary as JSON to this file")
    from flows.cli_servers import add_server_commands
    from flows.stream_cli import add_commands as add_stream_commands  # ingest, retrain, stream simulate

    add_server_commands(commands)
    add_stream_commands(commands)
    return parser.parse_args(argv)


def setup_logging(console=None) -> None:
    if console is not None:  # log lines print above the progress bars instead of through them
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, show_level=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    log = logging.getLogger("kdflow")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"kdflow {summary['pipeline']}: test split")
    for column in ("model", "arch", "test acc", "parameters"):
        table.add_column(column, justify="right" if column in ("test acc", "parameters") else "left")
    for role, m in summary["models"].items():
        table.add_row(role, m["arch"], f"{m['test_acc']:.2%}", f"{m['parameters']:,}")
    console = Console()
    console.print(table)
    best = ", ".join(f"{k}={v:.4g}" for k, v in summary["best_params"].items())
    t, ml = summary["trials"], summary["mlflow"]
    console.print(
        f"best method: {summary['best_method']}; hyper-parameters: {best}  "
        f"(trials: {t['complete']} complete, {t['pruned']} pruned)"
    )
    console.print(f"registered {ml['registered_model']} v{ml['version']}; champion: {summary['champion']['reason']}")
    console.print(
        f"MLflow experiment {ml['experiment_id']}, parent run {ml['parent_run_id']}; "
        f"Optuna study {summary['optuna']['study_name']}"
    )
    console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_seconds"].items()))


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.overrides)  # fails here, before any work, on a bad config
    from flows.cli_progress import progress_bars, wants_bars
    from pipelines.stores import move_credentials_to_env

    cfg, secrets = move_credentials_to_env(cfg)  # passwords stay out of flow parameters and MLflow params
    os.environ.update(secrets)
    from flows.distill_pipeline import distill_pipeline
    from kdcore.data import DataError
    from pipelines.stages import prepare_data

    # The complete config travels as the flow's parameters; the preset name, when it is one, is recorded too.
    preset = args.preset if args.preset in preset_names() else "digits"
    console = None
    if wants_bars():
        from rich.console import Console

        console = Console(stderr=True)
        setup_logging(console)
    try:
        prepare_data(
            cfg
        )  # bad data fails here, in one line, before Prefect or MLflow start; the flow reuses the result
        with progress_bars(console):
            summary = distill_pipeline(preset=preset, config=cfg)
    except DataError as e:
        print(f"kdflow: data error: {e}", file=sys.stderr)
        return 1
    print_summary(summary)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no phoning home from an offline box
    # The temporary server's 20 s default is too short on a busy machine (measured: 2 cores, load 15).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    args = parse_args(argv)
    setup_logging()
    try:
        if args.command in ("ingest", "retrain", "stream"):
            from flows.stream_cli import run_stream_command

            return run_stream_command(args)
        handler = getattr(args, "handler", None) or {"run": run}[args.command]
        return handler(args)
    except ConfigError as e:
        print(f"kdflow: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
