"""`kdflow run`: the distill-pipeline flow once, in the foreground, with a summary table."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from pipelines.config.schema import load_config, preset_names


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
    run.add_argument(
        "-v", "--verbose", action="store_true", help="log every epoch, and Prefect's and MLflow's own lines"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="check the config, the data and the stores, then exit without training"
    )
    run.set_defaults(handler=run_command)


def quiet_libraries() -> None:
    """One line per stage and per trial: the libraries' own progress lines need no action from a user."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # for the processes this one starts
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # this one imported mlflow before reading the variable
    warnings.filterwarnings("ignore", module=r"(mlflow|optuna|prefect|pydantic|torch|sklearn|alembic)(\.|$)")
    # MLflow asks the pyfunc models to take type hints; they validate their own input, the user can do nothing
    warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from pipelines.tracking.summary import (
        champion_sentence,
        choice_sentence,
        evidence_sentence,
        kd_gain_sentence,
        nothing_to_distil_sentence,
        speed_cells,
    )

    table = Table(title=f"kdflow {summary['pipeline']}: test split")
    columns = ("model", "arch", "test acc", "params", "MB", "ms (p95)", "/s @256")  # fits 80 columns
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "arch") else "right")
    for role, m in summary["models"].items():
        table.add_row(role, m["arch"], f"{m['test_acc']:.2%}", f"{m['parameters']:,}", *speed_cells(m))
    console = Console()
    console.print(table)
    console.print(evidence_sentence(summary), highlight=False, soft_wrap=True)
    console.print(kd_gain_sentence(summary))
    if note := nothing_to_distil_sentence(summary):
        console.print(f"{note}.", highlight=False, soft_wrap=True)
    best = ", ".join(f"{k}={v:.4g}" for k, v in summary["best_params"].items())
    t, ml = summary["trials"], summary["mlflow"]
    console.print(
        f"best method: {summary['best_method']}; hyper-parameters: {best}  "
        f"(trials: {t['complete']} complete, {t['pruned']} pruned)"
    )
    if choice_sentence(summary):
        console.print(f"chosen {choice_sentence(summary)}", highlight=False, soft_wrap=True)
    console.print(champion_sentence(summary), highlight=False, soft_wrap=True)
    console.print(
        f"MLflow experiment {ml['experiment_id']}, parent run {ml['parent_run_id']}; "
        f"Optuna study {summary['optuna']['study_name']}"
    )
    if ml.get("parent_run_url"):  # a local store: the UI that `kdflow ui` serves it on
        console.print(f"MLflow UI: {ml['parent_run_url']}", highlight=False, soft_wrap=True)
    console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_seconds"].items()))


def dry_run(cfg) -> int:
    from kdcore.data import DataError
    from pipelines.preflight import check_run

    try:
        for line in check_run(cfg):
            print(line)
    except DataError as e:
        print(f"kdflow: data error: {e}", file=sys.stderr)
        return 1
    print(f"kdflow run --dry-run: {cfg.name} is ready to run")
    return 0


def run_command(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.overrides)  # fails here, before any work, on a bad config
    from pipelines.tracking.run_liveness import heartbeat_interval

    try:
        heartbeat_interval()  # a bad KDFLOW_HEARTBEAT_S is known now, not when the first run opens
    except ValueError as e:
        print(f"kdflow: {e}", file=sys.stderr)
        return 2
    if args.verbose:
        logging.getLogger("kdflow").setLevel(logging.DEBUG)
    else:
        quiet_libraries()
    if args.dry_run:
        return dry_run(cfg)
    from flows.cli.progress import progress_bars, wants_bars
    from pipelines.stores.shared import move_credentials_to_env

    cfg, secrets = move_credentials_to_env(cfg)  # passwords stay out of flow parameters and MLflow params
    os.environ.update(secrets)
    from flows.distill_pipeline import distill_pipeline
    from flows.temporary_server import keep_temporary_server_out_of_ctrl_c
    from kdcore.data import DataError
    from pipelines.stages import prepare_data

    # The complete config travels as the flow's parameters; the preset name, when it is one, is recorded too.
    preset = args.preset if args.preset in preset_names() else "digits"
    console = None
    if wants_bars():
        from rich.console import Console

        console = Console(stderr=True)
        from flows.cli.log import setup_logging

        setup_logging(console, logging.DEBUG if args.verbose else logging.INFO)
    keep_temporary_server_out_of_ctrl_c()  # Ctrl-C stops the run in seconds, its state reported
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
