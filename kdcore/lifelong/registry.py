"""Strategies by name, so a config can say `strategy: derpp`."""

from __future__ import annotations

from collections.abc import Callable

STRATEGIES: dict[str, Callable] = {}


def register_strategy(name: str):
    def add(cls):
        STRATEGIES[name] = cls
        return cls

    return add


def build_strategy(name: str, **options):
    """Build strategy `name`; options a strategy does not use are ignored (one config for all)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](**options)
