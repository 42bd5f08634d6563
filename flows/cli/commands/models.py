"""`kdflow models [NAME]`: the registered models of a store, their versions, aliases and promotion decisions."""

from __future__ import annotations

import argparse
import sys

from flows.cli.commands._store import existing_store_uri


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="registered models and their versions, read from MLflow")
    models.add_argument("name", nargs="?", help="one registered model: list its versions (default: every model)")
    models.add_argument("--store-dir", default="mlruns", help="folder of the local stores (runtime.store_dir)")
    models.set_defaults(handler=models_command)


def version_line(v, aliases: list[str]) -> str:
    tags = v.tags
    acc = tags.get("test_acc") or tags.get("kdflow.avg_acc")
    learned = tags.get("kdflow.learned_batches") or tags.get("data.digest", "")[:12]
    return (
        f"  v{v.version:<4} {','.join(aliases) or '-':<10} acc {float(acc):.2%}" if acc else f"  v{v.version:<4} -"
    ) + f"   data {learned or '-'}   {tags.get('champion_decision', '')}"


def models_command(args: argparse.Namespace) -> int:
    uri = existing_store_uri("models", args.store_dir, "run `kdflow run` first, ")
    if uri is None:
        return 1
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    models = client.search_registered_models(f"name = '{args.name}'" if args.name else None)
    if not models and args.name:
        print(f"kdflow models: no registered model {args.name!r} in {args.store_dir}/", file=sys.stderr)
        return 1
    if not models:
        print(f"no registered models in {args.store_dir}/ yet")
    for model in sorted(models, key=lambda m: m.name):
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        versions = client.search_model_versions(f"name = '{model.name}'")
        print(f"{model.name}: {len(versions)} version(s)")
        shown = sorted(versions, key=lambda v: int(v.version), reverse=True)
        for v in shown if args.name else shown[:3]:
            print(version_line(v, aliases.get(str(v.version), [])))
    return 0
