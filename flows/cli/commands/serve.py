"""`kdflow serve`: register the deployments with a Prefect server and run the flow runs it schedules."""

from __future__ import annotations

import argparse
import os

from flows.cli.commands._prefect_api import connect_prefect


def add_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="register the deployments with a Prefect server and run what it schedules"
    )
    serve.add_argument("--limit", type=int, default=None, help="most flow runs at the same time (default: no limit)")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    if connect_prefect("serve") is None:
        return 1
    from flows.deployments import DEPLOYMENTS, serve_all

    print(
        f"kdflow serve: serving {', '.join(d.name for d in DEPLOYMENTS)} from {os.environ['PREFECT_API_URL']}; "
        "trigger runs from the Prefect UI; Ctrl-C stops",
        flush=True,
    )
    serve_all(limit=args.limit)
    return 0
