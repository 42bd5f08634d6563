"""The UI form: a preset plus partial overrides, validated as a whole before any work."""

import pytest

from pipelines.config import ConfigError, PipelineConfig, load_config
from pipelines.overrides import ConfigOverrides, PresetName, resolve_config, set_fields


def test_partial_overrides_land_on_the_preset_like_cli_overrides():
    form = {
        "teacher": {"width": 8, "train": {"epochs": 2}},
        "tune": {"n_trials": 3, "space": {"alpha": {"low": 0.2, "high": 0.5}}},
    }
    from_form = resolve_config("digits", form)
    from_cli = load_config(
        "digits",
        [
            "teacher.width=8",
            "teacher.train.epochs=2",
            "tune.n_trials=3",
            "tune.space.alpha.low=0.2",
            "tune.space.alpha.high=0.5",
        ],
    )
    assert from_form == from_cli
    assert from_form.teacher.arch == "cnn_medium" and from_form.teacher.train.lr == 0.003  # the rest is the preset's


def test_empty_form_is_the_preset_and_a_complete_config_is_itself():
    assert resolve_config(PresetName("digits"), None) == load_config("digits")
    custom = load_config("digits", ["name=other", "distill.alpha=0.3"])
    assert resolve_config("digits", custom) == custom  # what the CLI passes
    assert set_fields({"tune": {"n_trials": 2}}) == {"tune": {"n_trials": 2}}


def test_nulls_from_a_form_keep_the_preset_unless_the_field_can_be_empty():
    form = {
        "teacher": None,
        "student": {"arch": None, "width": None, "train": {"lr": None, "epochs": 2}},
        "tune": {"epochs": None},
    }
    cfg = resolve_config("digits", form)
    preset = load_config("digits")
    assert (
        cfg.teacher == preset.teacher and cfg.student.arch == "mlp" and cfg.student.train.lr == preset.student.train.lr
    )
    assert cfg.student.train.epochs == 2
    assert cfg.student.width is None and cfg.tune.epochs is None  # None is a real value there: the model's default


@pytest.mark.parametrize(
    "form, message",
    [
        ({"distill": {"alpha": 1.5}}, "distill.alpha"),
        ({"tune": {"n_trails": 3}}, "n_trails"),
        ({"runtime": {"device": "tpu"}}, "runtime.device"),
    ],
)
def test_out_of_bounds_or_unknown_fields_fail_in_the_form_itself(form, message):
    with pytest.raises(Exception) as e:
        ConfigOverrides.model_validate(form)
    assert message.split(".")[-1] in str(e.value)


@pytest.mark.parametrize(
    "form, message",
    [
        ({"teacher": {"arch": "resnet9000"}}, "invalid config: teacher.arch: Value error, unknown model 'resnet9000'"),
        (
            {"tune": {"space": {"lr": {"low": 0.1, "high": 0.01}}}},
            "invalid config: tune.space.lr: Value error, needs low < high",
        ),
    ],
)
def test_rules_across_fields_are_checked_once_form_meets_preset(form, message):
    with pytest.raises(ConfigError) as e:
        resolve_config("digits", form)
    assert str(e.value).startswith(message)


def test_form_mirrors_every_config_field_with_title_description_and_bounds():
    from pydantic import BaseModel

    def leaves(model, schema, defs, prefix=""):
        for name, field in model.model_fields.items():
            prop = schema["properties"][name]
            assert prop.get("title") and prop.get("description"), prefix + name
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                ref = next(a["$ref"] for a in prop["anyOf"] if "$ref" in a).split("/")[-1]
                yield from leaves(field.annotation, defs[ref], defs, f"{prefix}{name}.")
            else:
                yield prefix + name, prop

    schema = ConfigOverrides.model_json_schema()
    fields = dict(leaves(PipelineConfig, schema, schema["$defs"]))
    assert set(fields) == set(PipelineConfig().flat())  # every field of the config is in the form
    alpha = next(a for a in fields["distill.alpha"]["anyOf"] if a.get("type") == "number")
    assert (alpha["minimum"], alpha["maximum"]) == (0, 1)
    device = next(a for a in fields["runtime.device"]["anyOf"] if "enum" in a)
    assert device["enum"] == ["auto", "cpu", "cuda", "mps"]
