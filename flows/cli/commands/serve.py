"""`kdflow serve-flows`: register the deployments with a Prefect server and run the flow runs it schedules.

It serves Prefect flows, not models (models: `mlflow models serve`, `kdflow predict`); `kdflow serve`, its old
name, still works and says so.
"""

from __future__ import annotations

import argparse
import os
import sys

from flows.cli.commands._prefect_api import connect_prefect
from pipelines.tracking.runs import redact


def add_parser(commands) -> None:
    for name, handler, help in (
        ("serve-flows", serve_command, "register the Prefect deployments with a server and run what it schedules"),
        ("serve", old_name, "old name of serve-flows"),
    ):
        serve = commands.add_parser(name, help=help)
        serve.add_argument("--limit", type=int, default=None, help="most flow runs at once (default: no limit)")
        serve.set_defaults(handler=handler)


def old_name(args: argparse.Namespace) -> int:
    print("kdflow serve is now `kdflow serve-flows` (it serves Prefect flows, not models)", file=sys.stderr)
    return serve_command(args)


def serve_command(args: argparse.Namespace) -> int:
    if connect_prefect("serve-flows") is None:
        return 1
    from flows.deployments import DEPLOYMENTS, serve_all

    print(
        f"kdflow serve-flows: serving {', '.join(d.name for d in DEPLOYMENTS)} "
        f"from {redact(os.environ['PREFECT_API_URL'])}; "
        "trigger runs from the Prefect UI; Ctrl-C stops",
        flush=True,
    )
    serve_all(limit=args.limit)
    return 0
