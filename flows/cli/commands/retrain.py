"""`kdflow retrain --pipeline NAME`: a pipeline's champion learns the batches ingested for it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from flows.cli.commands._lifelong import lifelong_errors, print_pipeline_result, write_output
from pipelines.config.schema import STRATEGY_NAMES


def add_parser(commands) -> None:
    retrain = commands.add_parser("retrain", help="retrain a pipeline's champion on the batches ingested for it")
    retrain.add_argument("--pipeline", help="the pipeline whose champion (kdflow-NAME-student) learns its new batches")
    retrain.add_argument("--stream", help=argparse.SUPPRESS)  # the retired per-stream model: refused with a pointer
    retrain.add_argument("--store", default="mlruns", help="stream store and MLflow root (default: mlruns)")
    retrain.add_argument(
        "--policy",
        choices=("continual", "refit"),
        help="continual (a lifelong strategy on the new batches) or refit (the pipeline on all the data); "
        "default: retrain.policy",
    )
    retrain.add_argument("--strategy", choices=STRATEGY_NAMES, help="default: retrain.strategy")
    retrain.add_argument("--mode", choices=("teacher_student", "student_only"), help="default: retrain.mode")
    retrain.add_argument("--tolerance", type=float, help="accuracy a new version may lose (default: retrain.tolerance)")
    retrain.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting: retrain.KEY (e.g. retrain.derpp.buffer_size=500; repeatable)",
    )
    retrain.add_argument("--output", type=Path, help="write the results as JSON to this file")
    retrain.set_defaults(handler=lifelong_errors(run_retrain))


def pipeline_changes(args) -> dict:
    """retrain.* settings from the options; validated before any work."""
    from pipelines.config.overrides import merge
    from pipelines.config.schema import ConfigError, apply_override, former_retrain_keys_moved, validate

    tree: dict = {}
    for item in args.overrides:
        if not item.startswith("retrain."):
            raise ValueError(f"--set {item!r}: expected retrain.KEY=VALUE, e.g. retrain.derpp.buffer_size=500")
        apply_override(tree, item)
    options = ("policy", "strategy", "mode", "tolerance")
    given = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    changes = merge(former_retrain_keys_moved(tree.get("retrain", {})), given)
    try:
        validate({"retrain": changes})
    except ConfigError as e:  # it names the first bad setting
        raise ValueError(str(e).removeprefix("invalid config: ")) from None
    return changes


def stop_like_ctrl_c(signum: int, frame: object) -> None:
    """`kill PID` stops a retraining as Ctrl-C does: once, so its MLflow run ends FAILED on the way out."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_retrain(args) -> int:
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
        signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    try:
        return retrain_target(args)
    except KeyboardInterrupt:
        print(
            "kdflow retrain: stopped; its MLflow run ended as FAILED (run it again to learn the batches)",
            file=sys.stderr,
        )
        return 130


def retrain_target(args) -> int:
    from pipelines.stream import StreamError

    if not args.pipeline:  # before any work
        if args.stream:
            raise StreamError(
                f"--stream {args.stream}: a stream has no model of its own any more; retrain the pipeline its batches "
                "were ingested for with --pipeline NAME"
            )
        raise StreamError("name the pipeline whose champion retrains: --pipeline NAME")
    from pipelines.lifelong.continual import retrain_pipeline

    result = retrain_pipeline(args.pipeline, str(Path(args.store).resolve()), pipeline_changes(args)).to_dict()
    print_pipeline_result(result)
    write_output(args.output, [result])
    return 0
