"""What `kdflow ingest`, `kdflow retrain` and `kdflow stream simulate` share: options, results, errors."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path


def lifelong_errors(handler):
    """Bad batches and streams exit 1, bad settings 2, each in one line naming the command."""

    @functools.wraps(handler)
    def run(args) -> int:
        from pydantic import ValidationError

        from pipelines.stream import StreamError
        from pipelines.stream.readers import BatchError

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

    return run


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
