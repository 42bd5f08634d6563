"""`kdflow ingest`, `kdflow retrain` and `kdflow stream simulate`: the lifelong side of the command line."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

from pipelines.stream import SCENARIOS
from pipelines.stream.readers import FORMATS


def add_commands(commands) -> None:
    ingest = commands.add_parser("ingest", help="add a batch of new data to a stream (and emit kdflow.data.arrived)")
    ingest.add_argument(
        "path",
        type=Path,
        help="an image folder (one subfolder per class), a .pt / .npz file with inputs and "
        "labels, or texts: a .csv / .jsonl file with text and label, or a folder of .txt files per class",
    )
    ingest.add_argument("--stream", required=True, help="stream name (letters, digits, - and _)")
    ingest.add_argument("--store", default="mlruns", help="stream store root (default: mlruns)")
    ingest.add_argument("--scenario", default="class-il", choices=SCENARIOS, help="set by a stream's first batch")
    ingest.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of each class (default 0.2)")
    ingest.add_argument(
        "--format",
        dest="fmt",
        default="auto",
        choices=FORMATS,
        help="batch format (default: from the path: folder contents or file suffix)",
    )
    ingest.add_argument("--text-column", default="text", help="CSV column / JSONL key of the text (default: text)")
    ingest.add_argument("--label-column", default="label", help="CSV column / JSONL key of the label (default: label)")

    retrain = commands.add_parser("retrain", help="run the retrain-on-new-data flow once for a stream")
    retrain.add_argument("--stream", required=True, help="stream name, or * for every stream in the store")
    add_retrain_options(retrain)

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


def add_retrain_options(parser) -> None:
    parser.add_argument("--store", default="mlruns", help="stream store and MLflow root (default: mlruns)")
    parser.add_argument("--strategy", default="derpp", choices=("finetune", "lwf", "derpp", "joint"))
    parser.add_argument("--mode", default="teacher_student", choices=("teacher_student", "student_only"))
    parser.add_argument("--tolerance", type=float, default=0.02, help="promotion tolerance on average accuracy")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other retraining setting, e.g. --set buffer_size=500 (repeatable)",
    )
    parser.add_argument("--output", type=Path, help="write the results as JSON to this file")


def parse_overrides(items: list[str]) -> dict:
    from pipelines.lifelong import RetrainConfig

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if (
            not sep
            or key not in RetrainConfig.model_fields
            or key in ("stream", "store_dir", "strategy", "mode", "tolerance")
        ):
            raise ValueError(
                f"--set {item!r}: expected KEY=VALUE with KEY one of "
                f"{sorted(set(RetrainConfig.model_fields) - {'stream', 'store_dir', 'strategy', 'mode', 'tolerance'})}"
            )
        out[key] = value
    return out


def run_ingest(args) -> int:
    from flows.stream_events import emit_arrival
    from pipelines.stream import ingest
    from pipelines.stream.readers import TextColumns

    r = ingest(
        args.path,
        args.store,
        args.stream,
        args.scenario,
        args.test_fraction,
        args.fmt,
        TextColumns(args.text_column, args.label_column),
    )
    if r.duplicate:
        print(
            f"duplicate: {args.path} has the same content as batch {r.batch_id} of stream {args.stream}; "
            "nothing ingested"
        )
        return 0
    print(
        f"ingested {args.path} into stream {args.stream} as batch {r.batch_id}: classes {', '.join(r.classes)}; "
        f"train {sum(r.counts['train'].values())}, test {sum(r.counts['test'].values())}"
    )
    sent = emit_arrival(args.stream, r.batch_id, str(Path(args.store).resolve()), r.classes, r.counts)
    print("event kdflow.data.arrived sent" if sent else "no Prefect server configured (PREFECT_API_URL): no event sent")
    return 0


def check_settings(args) -> dict:
    from pipelines.lifelong import RetrainConfig

    settings = parse_overrides(args.overrides)
    RetrainConfig(
        stream="check",
        store_dir=args.store,
        strategy=args.strategy,
        mode=args.mode,
        tolerance=args.tolerance,
        **settings,
    )  # fails here, before any work
    return settings


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


def print_result(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if r["matrix"]:
        table = Table(
            title=f"stream {r['stream']}: accuracy matrix of v{r['version']} (row: after batch, column: on batch)"
        )
        table.add_column("after \\ on")
        for bid in r["learned_batches"]:
            table.add_column(bid.split("-")[0], justify="right")
        for bid, row in zip(r["learned_batches"], r["matrix"]):
            table.add_row(
                bid.split("-")[0],
                *["" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2%}" for v in row],
            )
        console.print(table)
    if r["metrics"]:
        m = r["metrics"]
        console.print(
            f"average accuracy {m['avg_acc']:.2%}   backward transfer {m['bwt']:+.2%}   "
            f"forgetting {m['forgetting']:.2%}"
        )
    console.print(f"{r['status']}: {r['reason']}")


def write_output(path: Path | None, results) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


def run_stream_command(args) -> int:
    from pydantic import ValidationError

    from pipelines.stream import StreamError
    from pipelines.stream.readers import BatchError

    # A loaded machine can take longer than Prefect's default 20 s to start its temporary server.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    handler = {"ingest": run_ingest, "retrain": run_retrain}.get(args.command)
    if args.command == "stream":
        handler = {"simulate": run_simulate}[args.stream_command]
    try:
        return handler(args)
    except (BatchError, StreamError) as e:
        print(f"kdflow {args.command}: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad --set / settings (pydantic's ValidationError is a ValueError)
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        msg = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(e)
        print(f"kdflow {args.command}: invalid setting {msg}", file=sys.stderr)
        return 2
