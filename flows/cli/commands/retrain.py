"""`kdflow retrain`: a pipeline's champion learns its new batches (--pipeline), or the stream flow once (--stream)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from flows.cli.commands._lifelong import check_settings, lifelong_errors, print_result, write_output

STREAM_DEFAULTS = {"strategy": "derpp", "mode": "teacher_student", "tolerance": 0.02}


def add_parser(commands) -> None:
    retrain = commands.add_parser(
        "retrain", help="retrain a pipeline's champion on its new batches (or run the stream flow once)"
    )
    target = retrain.add_mutually_exclusive_group(required=True)
    target.add_argument("--pipeline", help="the pipeline whose champion (kdflow-NAME-student) learns its new batches")
    target.add_argument("--stream", help="a stream's own lifelong model (the older path), or * for every stream")
    retrain.add_argument("--store", default="mlruns", help="stream store and MLflow root (default: mlruns)")
    retrain.add_argument(
        "--policy",
        choices=("continual", "refit"),
        help="--pipeline: continual (a lifelong strategy on the new batches) or refit (the pipeline on all the data); "
        "default: retrain.policy",
    )
    retrain.add_argument("--strategy", choices=("finetune", "lwf", "derpp", "joint"), help="default: retrain.strategy")
    retrain.add_argument("--mode", choices=("teacher_student", "student_only"), help="default: retrain.mode")
    retrain.add_argument("--tolerance", type=float, help="accuracy a new version may lose (default: retrain.tolerance)")
    retrain.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting: retrain.KEY for --pipeline (e.g. retrain.buffer_size=500), a RetrainConfig field "
        "for --stream (repeatable)",
    )
    retrain.add_argument("--output", type=Path, help="write the results as JSON to this file")
    retrain.set_defaults(handler=lifelong_errors(run_retrain))


def pipeline_changes(args) -> dict:
    """retrain.* settings from the options; validated before any work."""
    from pipelines.config import RetrainSection

    options = ("policy", "strategy", "mode", "tolerance")
    changes = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        field = key.removeprefix("retrain.")
        if not sep or not key.startswith("retrain.") or field not in RetrainSection.model_fields:
            raise ValueError(
                f"--set {item!r}: expected retrain.KEY=VALUE with KEY one of {sorted(RetrainSection.model_fields)}"
            )
        changes[field] = value
    RetrainSection.model_validate(changes)
    return changes


def stop_like_ctrl_c(signum: int, frame: object) -> None:
    """`kill PID` stops a retraining as Ctrl-C does: once, so its MLflow run ends FAILED on the way out."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_retrain(args) -> int:
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
    if args.pipeline:
        from flows.cli.commands._lifelong import print_pipeline_result
        from pipelines.lifelong.continual import retrain_pipeline

        result = retrain_pipeline(args.pipeline, str(Path(args.store).resolve()), pipeline_changes(args)).to_dict()
        print_pipeline_result(result)
        write_output(args.output, [result])
        return 0
    if args.policy:
        raise ValueError("--policy applies to a pipeline's champion: use it with --pipeline NAME")
    from flows.retrain import retrain_on_new_data

    for key, value in STREAM_DEFAULTS.items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    settings = check_settings(args)
    results = retrain_on_new_data(
        stream=args.stream,
        store_dir=str(Path(args.store).resolve()),
        strategy=args.strategy,
        mode=args.mode,
        tolerance=args.tolerance,
        settings=settings,
    )
    for r in results:
        print_result(r)
    write_output(args.output, results)
    return 0
