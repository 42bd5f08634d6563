"""A setting of a KD method or a lifelong strategy, declared once, beside the code that uses it.

A method's options are a frozen dataclass whose fields are made with `option(...)` (a default, its valid bounds and
what it does) or `tuned(...)` (also the range a search tries). The pipeline's config sections, the Prefect form's
fields and the Optuna search space are derived from these declarations (pipelines/config/schema.py), so a new method is
one file: its loss, its options, its registration.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NoOptions:
    """A method or strategy without options of its own."""


@dataclass(frozen=True)
class Search:
    """The range a search tries for a tuned option."""

    low: float
    high: float
    log: bool = True


def option(default: Any, description: str, *, ge=None, gt=None, le=None, lt=None, search: Search | None = None) -> Any:
    """A dataclass field with its default, the bounds a config value must respect, and what it does."""
    bounds = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    return dataclasses.field(default=default, metadata={"description": description, "bounds": bounds, "search": search})


def tuned(default: float, low: float, high: float, description: str, *, log: bool = True, **bounds) -> Any:
    """An `option` that a search varies between `low` and `high` (on a log scale unless told)."""
    return option(default, description, search=Search(low, high, log), **bounds)


@dataclass(frozen=True)
class OptionSpec:
    """One declared option, as the config derives its fields from it."""

    name: str
    type: type
    default: Any
    description: str
    bounds: dict[str, float]
    search: Search | None


def option_specs(options: type) -> list[OptionSpec]:
    """The declared options of an options dataclass, in declaration order."""
    hints = typing.get_type_hints(options)  # the annotations are strings (`from __future__ import annotations`)
    return [
        OptionSpec(
            name=f.name,
            type=hints[f.name],
            default=f.default,
            description=f.metadata.get("description", ""),
            bounds=dict(f.metadata.get("bounds", {})),
            search=f.metadata.get("search"),
        )
        for f in dataclasses.fields(options)
    ]


def check_signature(cls: type, options: type, skip: tuple[str, ...] = ()) -> None:
    """`cls(...)` takes exactly the declared options, with the declared defaults: fails at import otherwise."""
    params = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and name not in skip
    }
    declared = {spec.name: spec.default for spec in option_specs(options)}
    if params != declared:
        raise TypeError(f"{cls.__name__}.__init__ takes {params} but {options.__name__} declares {declared}")
