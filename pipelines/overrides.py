"""The config as a form: a preset plus any fields a person changes, e.g. in the Prefect UI.

`ConfigOverrides` mirrors `PipelineConfig` field by field (same titles, descriptions, enums and
bounds) with every field optional: an empty field keeps the preset's value. Cross-field rules
(ranges ordered, known architectures) are checked once the overrides meet the preset.
"""

from __future__ import annotations

import copy
from enum import Enum
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, create_model, model_validator
from pydantic.fields import FieldInfo

from pipelines.config import PipelineConfig, preset_names, read_preset, validate

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

    @model_validator(mode="before")
    @classmethod
    def _accept_complete_config(cls, value: Any) -> Any:
        # A complete PipelineConfig (the CLI's) is a valid set of overrides: every field set.
        return value.model_dump() if isinstance(value, BaseModel) else value


def _optional_field(name: str, info: FieldInfo, annotation: Any) -> tuple[Any, FieldInfo]:
    field = copy.copy(info)
    field.default, field.default_factory = None, None
    field.title = field.title or name.replace("_", " ").capitalize()
    field.description = field.description or SECTION_DESCRIPTIONS.get(name)
    return annotation | None, field


@cache
def overrides_model(model: type[BaseModel]) -> type[BaseModel]:
    """`model` with every field optional (None: keep the preset's value), sub-sections likewise."""
    fields = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = overrides_model(annotation)
        fields[name] = _optional_field(name, info, annotation)
    return create_model(f"{model.__name__}Overrides", __base__=_Form, __doc__=model.__doc__, **fields)


ConfigOverrides = overrides_model(PipelineConfig)


def set_fields(overrides: BaseModel | dict | None) -> dict[str, Any]:
    """Only the fields a person actually set, as a nested dict."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        overrides = ConfigOverrides.model_validate(overrides)
    return _drop_empty(overrides.model_dump(exclude_unset=True), PipelineConfig)


def _drop_empty(tree: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    # A form may send null for a field left empty: where the config cannot hold None, that means
    # "keep the preset's value"; where it can (teacher.width, tune.epochs), None is a real choice.
    out = {}
    for key, value in tree.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value
        elif isinstance(value, dict) and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out[key] = _drop_empty(value, field.annotation)
        elif value is not None or type(None) in get_args(field.annotation):
            out[key] = value
    return out


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(preset: str | Enum | None, overrides: BaseModel | dict | None = None) -> PipelineConfig:
    """The preset (none: the built-in defaults) with the overrides on top, validated as a whole.

    Raises ConfigError naming the first bad field.
    """
    preset = preset.value if isinstance(preset, Enum) else preset
    base = read_preset(preset) if preset else {}
    return validate(merge(base, set_fields(overrides)))
