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
    parser = argparse.ArgumentParser(prog="kdflow", description="Knowledge-distillation pipelines on Prefect, MLflow and Optuna.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the distill-pipeline flow once")
    run.add_argument("--preset", default="digits", help=f"preset name ({', '.join(preset_names())}) or a YAML file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config field, e.g. --set tune.n_trials=20 (repeatable)")
    run.add_argument("--output", type=Path, help="also write the summary as JSON to this file")
    return parser.parse_args(argv)


def setup_logging() -> None:
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
    console.print(f"best hyper-parameters: {best}  (trials: {t['complete']} complete, {t['pruned']} pruned)")
    console.print(f"registered {ml['registered_model']} v{ml['version']}; champion: {summary['champion']['reason']}")
    console.print(f"MLflow experiment {ml['experiment_id']}, parent run {ml['parent_run_id']}; "
                  f"Optuna study {summary['optuna']['study_name']}")
    console.print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_seconds"].items()))


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.overrides)  # fails here, before any work, on a bad config
    from pipelines.stores import move_credentials_to_env

    cfg, secrets = move_credentials_to_env(cfg)  # passwords stay out of flow parameters and MLflow params
    os.environ.update(secrets)
    from flows.distill_pipeline import distill_pipeline
    from kdcore.data import DataError

    try:
        summary = distill_pipeline(config=cfg)
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
    args = parse_args(argv)
    setup_logging()
    try:
        return {"run": run}[args.command](args)
    except ConfigError as e:
        print(f"kdflow: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
