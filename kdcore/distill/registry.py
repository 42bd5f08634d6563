"""Distillers by name, so a config can say `distill.method: dkd` and never import a class.

Each distiller declares its `Options` (kdcore/options.py) beside its loss; the pipeline derives its config section,
Prefect form fields and Optuna ranges from them, so registering here is all a new method needs.
"""

from __future__ import annotations

from kdcore.distill.base import Distiller
from kdcore.options import check_signature

DISTILLERS: dict[str, type[Distiller]] = {}


def register_distiller(name: str):
    def add(cls: type[Distiller]) -> type[Distiller]:
        check_signature(cls, cls.Options, skip=("layers",))  # layer choices are the pipeline's, not options
        DISTILLERS[name] = cls
        return cls

    return add


def build_distiller(name: str, **params) -> Distiller:
    """`build_distiller("dkd", alpha=1.0, beta=8.0)`; unknown names fail with the list of known ones."""
    if name not in DISTILLERS:
        raise ValueError(f"unknown distillation method {name!r}; choose one of {sorted(DISTILLERS)}")
    return DISTILLERS[name](**params)
