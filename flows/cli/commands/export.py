"""`kdflow export MODEL --format onnx --output student.onnx`: a registered student for runtimes other than Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.commands._store import existing_store_uri


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="write a registered student as an ONNX file")
    export.add_argument(
        "model",
        help="NAME (its champion, else its latest version), NAME@ALIAS or NAME/VERSION, e.g. kdflow-digits-student",
    )
    export.add_argument("--format", choices=["onnx"], default="onnx", help="file format (onnx)")
    export.add_argument("--output", type=Path, required=True, help="file to write, e.g. student.onnx")
    export.add_argument("--store-dir", default="mlruns", help="folder of the local stores (runtime.store_dir)")
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    uri = existing_store_uri("export", args.store_dir)
    if uri is None:
        return 1
    import mlflow

    from pipelines.registry.export_version import ExportError, export_version

    mlflow.set_tracking_uri(uri)
    try:
        done = export_version(args.model, args.output)
    except ExportError as e:
        print(f"kdflow export: {e}", file=sys.stderr)
        return 1
    print(f"{done.name} v{done.version} written to {done.output} (ONNX, dynamic batch dimension)")
    if done.preprocessing is not None:
        print(f"preprocessing and classes: {done.preprocessing}")
    print(f"parity with PyTorch: {done.parity}")
    return 0
