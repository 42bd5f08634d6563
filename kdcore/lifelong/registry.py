"""Strategies by name, so a config can say `strategy: derpp`."""

from __future__ import annotations

STRATEGIES: dict[str, type] = {}


def register_strategy(name: str):
    def add(cls):
        STRATEGIES[name] = cls
        return cls

    return add


def build_strategy(name: str, seed: int = 0, **options):
    """`build_strategy("derpp", buffer_size=500, logit_weight=1.0)`; an option the strategy lacks is an error."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    valid = cls.option_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(valid) or 'none'}"
        )
    return cls(cls.Options(**options), seed=seed)
