"""`kdflow config show`: the resolved config, as YAML, exactly what `kdflow run` with the same flags would run."""

from __future__ import annotations

import argparse

import yaml

from pipelines.config.schema import load_config, preset_names


def add_parser(commands) -> None:
    config = commands.add_parser("config", help="show the resolved config of a preset and overrides")
    actions = config.add_subparsers(dest="config_command", required=True)
    show = actions.add_parser("show", help="print the config `kdflow run` would use, as YAML, and exit")
    show.add_argument("--preset", default="digits", help=f"preset name ({', '.join(preset_names())}) or a YAML file")
    show.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one field"
    )
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.preset, args.overrides)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0
