"""`kdflow run`: the distill-pipeline flow once, in the foreground, with a summary table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipelines.config import load_config, preset_names


def add_parser(commands) -> None:
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
    run.set_defaults(handler=run_command)


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


def run_command(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.overrides)  # fails here, before any work, on a bad config
    from flows.cli.progress import progress_bars, wants_bars
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
        from flows.cli.log import setup_logging

        setup_logging(console)
    try:
        # bad data fails here, in one line, before Prefect or MLflow start; the flow reuses the result
        prepare_data(cfg)
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
