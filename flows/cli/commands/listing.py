"""`kdflow list presets|models|methods|strategies|datasets`: what kdflow can do, one line each."""

from __future__ import annotations

import argparse
import inspect
import itertools
import re

from pipelines.config.schema import PRESETS_DIR, load_config, preset_names

KINDS = ("presets", "models", "methods", "strategies", "datasets")
EXAMPLE_INPUT = {"image": (3, 32, 32), "text": (64,)}  # parameter counts are for these inputs and 10 classes


def add_parser(commands) -> None:
    listing = commands.add_parser("list", help="list presets, models, KD methods, lifelong strategies or datasets")
    listing.add_argument("kind", choices=KINDS)
    listing.set_defaults(handler=list_command)


def first_line(obj) -> str:
    """The first line of `obj`'s own docstring (not one it inherits), else of its module's."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    doc = inspect.cleandoc(doc or inspect.getmodule(obj).__doc__ or "")
    return doc.splitlines()[0] if doc else ""


def preset_lines() -> list[str]:
    lines = []
    for name in preset_names():
        cfg = load_config(name)
        text = (PRESETS_DIR / f"{name}.yaml").read_text().splitlines()
        header = [line[1:].strip() for line in itertools.takewhile(lambda line: line.startswith("#"), text)]
        expected = next((i for i, line in enumerate(header) if line.lower().startswith("expected")), None)
        note = ""
        if expected is not None:  # the "Expected ... accuracy" comment and its indented continuation lines
            note = " ".join(header[expected : expected + 3])
            note = note.split(":", 1)[1] if ":" in header[expected] else note
            note = re.split(r"\s(?=[A-Z][a-z])", note.strip(), maxsplit=1)[0]  # up to the next sentence
        lines.append(
            f"{name:<14} {cfg.data.dataset:<13} {cfg.teacher.arch} -> {cfg.student.arch}"
            + (f"   expected: {note}" if note else "")
        )
    return lines


def model_lines() -> list[str]:
    from kdcore.models import build_model, count_parameters
    from kdcore.models.registry import ABOUT

    lines = []
    for name, about in sorted(ABOUT.items()):
        if about.modality == "hf_text":  # its size is its pretrained weights'
            lines.append(f"{name:<19} {'text':<6} {'(its weights)':>12} parameters   {about.description}")
            continue
        options = {"vocab_size": 20_000} if about.modality == "text" else {}
        try:
            params = count_parameters(build_model(name, EXAMPLE_INPUT[about.modality], 10, **options))
        except ImportError as e:  # an optional package (timm) is not installed
            lines.append(
                f"{name:<19} {about.modality:<6} {'(needs ' + str(e.name) + ')':>12} parameters   {about.description}"
            )
            continue
        lines.append(f"{name:<19} {about.modality:<6} {params:>12,} parameters   {about.description}")
    return lines


def registry_lines(entries: dict) -> list[str]:
    return [f"{name:<14} {first_line(entry)}" for name, entry in sorted(entries.items())]


def list_command(args: argparse.Namespace) -> int:
    if args.kind == "presets":
        lines = preset_lines()
    elif args.kind == "models":
        lines = model_lines()
        lines.append("(parameters at the default width, for 3x32x32 images or a 20,000-word vocabulary, 10 classes)")
    elif args.kind == "methods":
        from kdcore.distill import DISTILLERS

        lines = registry_lines(DISTILLERS)
    elif args.kind == "strategies":
        from kdcore.lifelong import STRATEGIES

        lines = registry_lines(STRATEGIES)
    else:
        from kdcore.datasets import DATASETS

        lines = registry_lines(DATASETS)
    print("\n".join(lines))
    return 0
