"""`kdflow predict`: a registered student on image files, folders or texts; one CSV row per input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.commands._store import existing_store_uri


def add_parser(commands) -> None:
    predict = commands.add_parser("predict", help="predict classes of images or texts with a registered student")
    predict.add_argument(
        "model", nargs="?", help="model URI: models:/NAME@alias, models:/NAME/3, runs:/... (or use --preset)"
    )
    predict.add_argument("inputs", nargs="*", type=Path, help="image files or folders, CSV / JSONL texts, .txt folders")
    predict.add_argument("--preset", help="use this pipeline's champion, models:/kdflow-NAME-student@champion")
    predict.add_argument("--output", type=Path, help="CSV file to write (default: standard output)")
    predict.add_argument("--probs", action="store_true", help="add every class's probability")
    predict.add_argument("--strict", action="store_true", help="stop at the first unreadable input")
    predict.add_argument("--store-dir", default="mlruns", help="folder of the local stores (runtime.store_dir)")
    predict.set_defaults(handler=predict_command)


def predict_command(args: argparse.Namespace) -> int:
    from pipelines.registry.predict import PredictError, champion_uri, predict

    inputs = ([Path(args.model)] if args.preset and args.model else []) + args.inputs
    model = champion_uri(args.preset) if args.preset else args.model
    if not model or not inputs:
        print("kdflow predict: give a model URI (or --preset NAME) and at least one input", file=sys.stderr)
        return 2
    uri = existing_store_uri("predict", args.store_dir)
    if uri is None:
        return 1
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        with progress_bar() as on_progress:
            report = predict(model, inputs, args.output, probs=args.probs, strict=args.strict, on_progress=on_progress)
    except PredictError as e:
        print(f"kdflow predict: {e}", file=sys.stderr)
        return 1
    for name, why in report.skipped:
        print(f"kdflow predict: skipped {name}: {why}", file=sys.stderr)
    if args.output:
        print(f"{report.predicted} predictions written to {args.output}", file=sys.stderr)
    return 0


class progress_bar:
    """A rich progress bar on a terminal (stderr); nothing in a pipe."""

    def __enter__(self):
        from rich.progress import Progress

        self.progress = Progress(transient=True) if sys.stderr.isatty() else None
        if self.progress is None:
            return None
        self.progress.start()
        self.task = self.progress.add_task("predict", total=None)
        return lambda done, total: self.progress.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
