"""`kdflow deploy`: the deployments on a work pool, for workers on other hosts."""

from __future__ import annotations

import argparse
import os

from flows.cli.commands._prefect_api import connect_prefect


def add_parser(commands) -> None:
    deploy = commands.add_parser(
        "deploy", help="create the deployments on a work pool, for `prefect worker start --pool NAME`"
    )
    deploy.add_argument("--pool", required=True, help="work pool name; created (process type) if missing")
    deploy.add_argument(
        "--working-dir",
        default=".",
        help="folder the runs execute in on the worker host, holding the default stores mlruns/ (default: this folder)",
    )
    deploy.set_defaults(handler=deploy_command)


def deploy_command(args: argparse.Namespace) -> int:
    if connect_prefect("deploy") is None:
        return 1
    from flows.deployments import deploy_all, ensure_process_pool

    created = ensure_process_pool(args.pool)
    print(f"work pool {args.pool!r} ({'created, process type' if created else 'exists'})")
    working_dir = os.path.abspath(args.working_dir)
    for name in deploy_all(args.pool, working_dir):
        print(f"deployment {name} on {args.pool!r}, running in {working_dir}")
    print(f"Start a worker on each machine that should run them:  prefect worker start --pool {args.pool}")
    return 0
