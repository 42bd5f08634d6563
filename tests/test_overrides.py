"""The UI form: a preset plus partial overrides, validated as a whole before any work."""

import pytest

from pipelines.config.overrides import ConfigOverrides, PresetName, resolve_config, set_fields
from pipelines.config.schema import ConfigError, PipelineConfig, load_config


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


def test_nulls_from_a_form_keep_the_preset_also_where_the_field_can_be_empty():
    # Opening a section of Prefect's Custom run form sends null for every field left empty in it.
    form = {
        "teacher": None,
        "student": {"arch": None, "width": None, "input_dropout": None, "train": {"lr": None, "epochs": 2}},
        "tune": {"epochs": None},
    }
    cfg = resolve_config("digits", form)
    preset = load_config("digits")
    assert cfg.student.train.epochs == 2
    assert cfg.model_copy(update={"student": preset.student}) == preset  # nothing else moved
    assert cfg.student.model_copy(update={"train": preset.student.train}) == preset.student
    assert cfg.student.width == 32 and cfg.tune.epochs == 30  # the preset's, not the model's default


def test_a_field_is_emptied_only_when_named_in_clear():
    cfg = resolve_config("digits", {"student": {"train": {"epochs": 2}}}, clear=["student.width", "tune.epochs"])
    assert cfg.student.width is None and cfg.tune.epochs is None  # the model's default, the student's epochs
    assert cfg.teacher.width == 32


def test_the_cli_complete_config_keeps_its_empty_fields():
    custom = load_config("digits", ["student.width=", "tune.epochs="])  # empty on the command line: None
    assert resolve_config("digits", custom) == custom
    assert resolve_config("digits", ConfigOverrides.model_validate(custom)) == custom  # as the flow receives it


@pytest.mark.parametrize(
    "form, message",
    [
        ({"distill": {"alpha": 1.5}}, "distill.alpha"),
        ({"tune": {"n_trails": 3}}, "n_trails"),
        ({"runtime": {"device": "tpu"}}, "runtime.device"),
        ({"teacher": {"arch": "resnet9000"}}, "teacher.arch"),
    ],
)
def test_out_of_bounds_or_unknown_fields_fail_in_the_form_itself(form, message):
    with pytest.raises(Exception) as e:
        ConfigOverrides.model_validate(form)
    assert message.split(".")[-1] in str(e.value)


@pytest.mark.parametrize(
    "form, message",
    [
        (
            {"student": {"arch": "lstm"}},
            "invalid config: student.arch=lstm does not fit data.dataset=digits; choose an image model (cnn_medium, ",
        ),
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

    from kdcore.models import MODELS

    def leaves(model, schema, defs, prefix=""):
        for name, field in model.model_fields.items():
            prop = schema["properties"][name]
            assert prop.get("title") and prop.get("description"), prefix + name
            # no "X | None" toggle in Prefect's form: a plain field, left empty to keep the preset's value
            assert "default" not in prop and {"type": "null"} not in prop.get("anyOf", []), prefix + name
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                yield from leaves(field.annotation, defs[prop["$ref"].split("/")[-1]], defs, f"{prefix}{name}.")
            else:
                yield prefix + name, prop

    schema = ConfigOverrides.model_json_schema()
    fields = dict(leaves(PipelineConfig, schema, schema["$defs"]))
    assert set(fields) == set(PipelineConfig().flat())  # every field of the config is in the form
    assert (fields["distill.alpha"]["minimum"], fields["distill.alpha"]["maximum"]) == (0, 1)
    assert (fields["student.width"]["type"], fields["student.width"]["minimum"]) == ("integer", 1)
    assert fields["runtime.device"]["enum"] == ["auto", "cpu", "cuda", "mps"]
    assert fields["teacher.arch"]["enum"] == fields["student.arch"]["enum"] == sorted(MODELS)  # a choice, not text


def test_prefects_server_accepts_the_nulls_its_form_sends_and_refuses_a_bad_value_at_its_field():
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import ValidationError, validate

    from flows.distill_pipeline import distill_pipeline

    schema = parameter_schema(distill_pipeline.fn).model_dump_for_openapi()  # what the deployment carries
    nulls = {"config": {"student": {"width": None, "input_dropout": None, "train": {"epochs": 2}}}}
    validate(nulls, schema, raise_on_error=True)  # the check behind enforce_parameter_schema
    validate({"clear": ["student.width"]}, schema, raise_on_error=True)
    with pytest.raises(ValidationError, match="config.student.train.epochs"):
        validate({"config": {"student": {"train": {"epochs": 0}}}}, schema, raise_on_error=True)
    with pytest.raises(ValidationError, match="config.student.arch"):
        validate({"config": {"student": {"arch": "resnet9000"}}}, schema, raise_on_error=True)
