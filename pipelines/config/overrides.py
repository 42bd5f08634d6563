"""The config as a form: a preset plus any fields a person changes, e.g. in the Prefect UI.

`ConfigOverrides` mirrors `PipelineConfig` field by field (same titles, descriptions, enums and
bounds) with every field optional: an empty field keeps the preset's value, and so does null, which
Prefect's form sends for every field left empty in a section it opened. A field whose value may
really be empty (student.width: the model's default) is emptied by naming it in `clear`.
Cross-field rules (ranges ordered, a model that reads the data) are checked once the overrides meet the preset.
"""

from __future__ import annotations

import copy
import types
from enum import Enum
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model, model_validator
from pydantic.fields import FieldInfo

from pipelines.config.schema import ModelConfig, PipelineConfig, preset_names, read_preset, validate

# Sections of PipelineConfig that carry no description of their own; the form shows these.
SECTION_DESCRIPTIONS = {
    "data": "Which dataset and how it is split into train / validation / test.",
    "teacher": "The large model distilled from.",
    "student": "The small model distilled into.",
    "distill": "The distillation method and its loss weights.",
    "tune": "The Optuna search over the distillation hyper-parameters.",
    "runtime": "Device, seeds and where runs, models and caches are stored.",
    "evaluate": "What the evaluation measures besides accuracy: size, latency and throughput on the run's device.",
    "register": "When a new registered version becomes the champion.",
    "retrain": "How the champion keeps learning as new data batches arrive (kdflow retrain --pipeline NAME).",
    "train": "How this model is trained.",
}

# A choice in the UI form (an enum even while there is one preset); presets are files, known at import.
PresetName = Enum("PresetName", {name: name for name in preset_names()}, type=str)


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")
    _complete: dict[str, Any] | None = PrivateAttr(None)  # a whole config, its empty fields included

    @model_validator(mode="wrap")
    @classmethod
    def _null_keeps_the_preset(cls, value: Any, handler) -> Any:
        if isinstance(value, BaseModel) and not isinstance(value, _Form):
            # A complete PipelineConfig (the CLI's) is a valid set of overrides whose empty fields are choices.
            complete = value.model_dump()
            form = handler(complete)
            form._complete = complete
            return form
        if isinstance(value, dict):  # null is "left empty", as if the field were not sent
            value = {k: v for k, v in value.items() if v is not None}
        return handler(value)


def _no_default_in_schema(schema: dict[str, Any]) -> None:
    # Without "default": null Prefect's server accepts null for the field, and its form leaves the field empty.
    schema.pop("default", None)


def _not_none(annotation: Any) -> Any:
    """`int | None` -> `int`: null means "keep the preset", so the form needs no null branch (one click less)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
    return annotation


def _form_field(name: str, info: FieldInfo, annotation: Any) -> tuple[Any, FieldInfo]:
    field = copy.copy(info)
    field.default, field.default_factory = None, None
    field.title = field.title or name.replace("_", " ").capitalize()
    field.description = field.description or SECTION_DESCRIPTIONS.get(name)
    field.json_schema_extra = _no_default_in_schema
    return annotation, field


def model_names() -> Any:
    """The registered models as a choice (kdcore.models.registry): a static schema cannot know the preset's data."""
    from kdcore.models import MODELS

    return Literal[tuple(sorted(MODELS))]


@cache
def overrides_model(model: type[BaseModel]) -> type[BaseModel]:
    """`model` with every field optional (empty or null: keep the preset's value), sub-sections likewise."""
    fields = {}
    for name, info in model.model_fields.items():
        annotation = _not_none(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = overrides_model(annotation)
        elif issubclass(model, ModelConfig) and name == "arch":
            annotation = model_names()
        fields[name] = _form_field(name, info, annotation)
    return create_model(f"{model.__name__}Overrides", __base__=_Form, __doc__=model.__doc__, **fields)


ConfigOverrides = overrides_model(PipelineConfig)


def _emptiable(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _emptiable(annotation, f"{prefix}{name}.")
        elif type(None) in get_args(annotation):
            out.append(prefix + name)
    return out


# The fields whose value may be empty (None), as a choice for the form's `clear` list.
EmptiableField = Literal[tuple(_emptiable(PipelineConfig))]


def set_fields(overrides: BaseModel | dict | None) -> dict[str, Any]:
    """Only the fields a person actually set (null: not set), as a nested dict."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        overrides = ConfigOverrides.model_validate(overrides)
    return overrides.model_dump(exclude_unset=True)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(
    preset: str | Enum | None, overrides: BaseModel | dict | None = None, clear: tuple[str, ...] | list[str] = ()
) -> PipelineConfig:
    """The preset (none: the built-in defaults) with the overrides on top and the `clear` fields emptied.

    A complete config (the CLI's) is taken whole. Raises ConfigError naming the first bad field.
    """
    if isinstance(overrides, PipelineConfig) or getattr(overrides, "_complete", None) is not None:
        complete = overrides.model_dump() if isinstance(overrides, PipelineConfig) else overrides._complete
        return validate(merge(complete, _emptied(clear)))
    preset = preset.value if isinstance(preset, Enum) else preset
    base = read_preset(preset) if preset else {}
    return validate(merge(merge(base, set_fields(overrides)), _emptied(clear)))


def _emptied(clear: tuple[str, ...] | list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in clear:
        *parents, leaf = str(path).split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = None
    return tree
