"""`kdflow stream simulate`: a class-incremental run through the pipeline path. The pipeline distils its champion
on the first task's classes (data.classes); each later task is ingested as a batch for it and learned by
`retrain --pipeline`'s own code, the champion moving only by the retraining decision."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from flows.cli.commands._lifelong import lifelong_errors, print_pipeline_result, write_output
from pipelines.config.schema import STRATEGY_NAMES


def add_parser(commands) -> None:
    stream = commands.add_parser("stream", help="lifelong-learning streams")
    actions = stream.add_subparsers(dest="stream_command", required=True)
    simulate = actions.add_parser(
        "simulate",
        help="run a pipeline on the first task's classes, then ingest and retrain on each later task in turn",
    )
    simulate.add_argument(
        "--preset", default="split_fmnist", help="pipeline preset on fashion_mnist or digits (default: split_fmnist)"
    )
    simulate.add_argument("--tasks", type=int, default=5, help="class-incremental tasks (default 5)")
    simulate.add_argument("--limit", type=int, help="at most this many training images per task (quick runs)")
    simulate.add_argument("--store", default="mlruns", help="stream store and MLflow root (default: mlruns)")
    simulate.add_argument("--strategy", choices=STRATEGY_NAMES, help="default: retrain.strategy")
    simulate.add_argument("--tolerance", type=float, help="default: retrain.tolerance")
    simulate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any pipeline setting, e.g. --set retrain.derpp.buffer_size=500 (repeatable)",
    )
    simulate.add_argument("--output", type=Path, help="write each retraining's result as JSON to this file")
    simulate.add_argument("--seed", type=int, default=0, help="seed of the per-task image sample (--limit)")
    simulate.set_defaults(handler=lifelong_errors(run_simulate))


def run_simulate(args) -> int:
    from pipelines.config.schema import load_config
    from pipelines.stream.simulate import class_tasks, dataset_arrays

    store = str(Path(args.store).resolve())
    cfg = load_config(args.preset, [*args.overrides, f"runtime.store_dir={store}"])  # bad settings fail here
    changes = {k: getattr(args, k) for k in ("strategy", "tolerance") if getattr(args, k) is not None}
    cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_validate({**cfg.retrain.model_dump(), **changes})})
    x, y, class_names = dataset_arrays(cfg.data.dataset, cfg.data.root)
    tasks = class_tasks(class_names, args.tasks)
    data = {"classes": tasks[0]} | ({"limit_train": args.limit} if args.limit else {})
    cfg = cfg.model_copy(update={"data": cfg.data.model_validate({**cfg.data.model_dump(), **data})})
    first_task(args.preset, cfg)
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        for t, task in enumerate(tasks[1:], start=2):
            result = later_task(cfg, store, (x, y, class_names), task, Path(tmp) / f"task-{t}.npz", args)
            steps.append(result)
            print(f"task {t} ({', '.join(task)}): {result['status']}: {result['reason']}", flush=True)
    print_pipeline_result(steps[-1])
    write_output(args.output, steps)
    return 0


def first_task(preset: str, cfg) -> None:
    """The pipeline itself on the first task's classes: its champion is what later tasks retrain."""
    from flows.cli.commands.run import print_summary, quiet_libraries
    from flows.distill_pipeline import distill_pipeline
    from pipelines.config.schema import preset_names
    from pipelines.stages import prepare_data

    quiet_libraries()
    print(f"task 1 ({', '.join(cfg.data.classes)}): kdflow run --preset {preset}", flush=True)
    prepare_data(cfg)  # bad data fails here, in one line
    print_summary(distill_pipeline(preset=preset if preset in preset_names() else "digits", config=cfg))


def later_task(cfg, store: str, arrays, task: list[str], path: Path, args) -> dict:
    """One later task: ingested as a batch for the pipeline (checked against its champion), then learned."""
    import mlflow

    from pipelines.lifelong.continual import retrain_pipeline, store_tracking_uri
    from pipelines.lifelong.lineage import check_fits_champion
    from pipelines.stream import ingest
    from pipelines.stream.simulate import write_task_batch

    mlflow.set_tracking_uri(store_tracking_uri(store))
    write_task_batch(*arrays, task, args.limit, args.seed, path)
    r = ingest(path, store, cfg.name, pipeline=cfg.name, fits=functools.partial(check_fits_champion, cfg.name))
    print(f"batch {r.batch_id}: classes {', '.join(r.classes)}" + (" (duplicate)" if r.duplicate else ""), flush=True)
    return retrain_pipeline(cfg.name, store, cfg.retrain.model_dump()).to_dict()
