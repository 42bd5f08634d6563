"""`kdflow retrain`: the retrain-on-new-data flow once for a stream, in the foreground."""

from __future__ import annotations

from pathlib import Path

from flows.cli.commands._lifelong import (
    add_retrain_options,
    check_settings,
    lifelong_errors,
    print_result,
    write_output,
)


def add_parser(commands) -> None:
    retrain = commands.add_parser("retrain", help="run the retrain-on-new-data flow once for a stream")
    retrain.add_argument("--stream", required=True, help="stream name, or * for every stream in the store")
    add_retrain_options(retrain)
    retrain.set_defaults(handler=lifelong_errors(run_retrain))


def run_retrain(args) -> int:
    from flows.retrain import retrain_on_new_data

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
