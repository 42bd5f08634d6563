"""What `kdflow ingest`, `kdflow retrain` and `kdflow stream simulate` share: options, results, errors."""

from __future__ import annotations

import functools
import json
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


def write_output(path: Path | None, results) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


def print_pipeline_result(r: dict) -> None:
    """A pipeline retraining: accuracy matrix (rows: after each step; columns: test parts), per-part accuracies of
    the new version and of the champion re-scored, and the decision."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if r["matrix"]:
        table = Table(title=f"pipeline {r['pipeline']}: accuracy matrix of v{r['version']} (row: after, column: on)")
        short = ["original"] + [p.rsplit("/", 1)[-1].split("-")[0] for p in r["parts"][1:]]
        table.add_column("after \\ on")
        for name in short:
            table.add_column(name, justify="right")
        for name, row in zip(short, r["matrix"]):
            table.add_row(name, *["" if v is None else f"{v:.2%}" for v in row])
        console.print(table)
        parts = Table(title="test parts")
        for column in ("part", f"v{r['version']}", "champion now"):
            parts.add_column(column, justify="right" if column != "part" else "left")
        for part, acc in r["part_accuracies"].items():
            parts.add_row(part, f"{acc:.2%}", f"{r['champion_part_accuracies'][part]:.2%}")
        console.print(parts)
        m = r["metrics"]
        console.print(
            f"average accuracy {m['avg_acc']:.2%}   backward transfer {m['bwt']:+.2%}   "
            f"forgetting {m['forgetting']:.2%}"
        )
    console.print(f"{r['status']}: {r['reason']}")
