"""`kdflow stream simulate`: cut a dataset into batches, then ingest and retrain on each in turn."""

from __future__ import annotations

import tempfile
from pathlib import Path

from flows.cli.commands._lifelong import (
    add_retrain_options,
    check_settings,
    lifelong_errors,
    print_result,
    write_output,
)
from pipelines.stream import SCENARIOS


def add_parser(commands) -> None:
    stream = commands.add_parser("stream", help="lifelong-learning streams")
    actions = stream.add_subparsers(dest="stream_command", required=True)
    simulate = actions.add_parser("simulate", help="cut a dataset into batches; ingest and retrain on each in turn")
    simulate.add_argument("--preset", default="fashion_mnist", choices=("fashion_mnist", "digits"))
    simulate.add_argument(
        "--root", help="dataset folder (fashion_mnist: the IDX .gz files; default /usr/share/datasets/fashion-mnist)"
    )
    simulate.add_argument("--scenario", default="class-il", choices=SCENARIOS)
    simulate.add_argument("--tasks", type=int, default=5, help="number of batches")
    simulate.add_argument("--limit", type=int, help="at most this many examples per batch")
    simulate.add_argument("--stream", help="stream name (default: <preset>-<scenario>-<strategy>)")
    simulate.add_argument("--seed", type=int, default=0)
    add_retrain_options(simulate)
    simulate.set_defaults(handler=lifelong_errors(run_simulate))


def run_simulate(args) -> int:
    from flows.retrain import retrain_on_new_data
    from pipelines.stream import ingest
    from pipelines.stream.simulate import preset_arrays, scenario_batches, write_batches

    settings = check_settings(args)
    name = args.stream or f"{args.preset}-{args.scenario}-{args.strategy}".replace("_", "-")
    x, y, classes = preset_arrays(args.preset, args.root)
    batches = scenario_batches(x, y, args.scenario, args.tasks, args.limit, args.seed)
    store = str(Path(args.store).resolve())
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_batches(batches, classes, Path(tmp)):
            r = ingest(path, store, name, args.scenario)
            print(
                f"batch {r.batch_id}: classes {', '.join(r.classes)}" + (" (duplicate)" if r.duplicate else ""),
                flush=True,
            )
            result = retrain_on_new_data(
                stream=name,
                store_dir=store,
                strategy=args.strategy,
                mode=args.mode,
                tolerance=args.tolerance,
                settings=settings,
            )[0]
            steps.append(result)
            print(f"  {result['status']}: {result['reason']}", flush=True)
    print_result(steps[-1])
    write_output(args.output, steps)
    return 0
