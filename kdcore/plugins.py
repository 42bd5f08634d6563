"""Every module of a package, imported, so each registers what it defines (a KD method, a lifelong strategy, a model,
a dataset loader): adding one of those is adding its file, with no list to extend elsewhere."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_modules(package: str, path: Iterable[str]) -> None:
    """`import_modules(__name__, __path__)` from a package's __init__."""
    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{info.name}")
