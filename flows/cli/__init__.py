"""The `kdflow` command line: one module per command in flows/cli/commands/, found and dispatched here.

A command module defines `add_parser(commands)`, which adds its sub-parser and sets `handler=` to the function
that runs it; adding a command is adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from importlib.metadata import version

from flows.cli import commands as command_modules
from flows.cli.log import setup_logging
from pipelines.config.schema import ConfigError
from pipelines.stores.credentials import CredentialsMasked, mask_credentials_in_logs


def command_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(command_modules.__path__) if not m.name.startswith("_"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kdflow", description="Knowledge-distillation pipelines on Prefect, MLflow and Optuna."
    )
    parser.add_argument("--version", action="version", version=f"kdflow {version('kdflow')}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in command_names():
        importlib.import_module(f"{command_modules.__name__}.{name}").add_parser(commands)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no phoning home from an offline box
    # The temporary server's 20 s default is too short on a busy machine (measured: 2 cores, load 15).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars in logs help nobody
    args = parse_args(argv)
    setup_logging()
    mask_credentials_in_logs()  # whichever library logs a URI with a password, the password is not shown
    try:
        return args.handler(args)
    except ConfigError as e:
        print(f"kdflow: {e}", file=sys.stderr)
        return 2
    except CredentialsMasked as e:  # an error that quoted a store's URI: its words, the password masked
        print(f"kdflow: {e}", file=sys.stderr)
        return 1
