"""Every numeric config field refuses NaN, infinities, wrong types and values outside its limits, and search
ranges and methods that cannot work are refused before any training: exit 2, one line."""

from __future__ import annotations

import math
import subprocess
import sys

import annotated_types as at
import optuna
import pytest
from pydantic import BaseModel

from pipelines.config.schema import ConfigError, PipelineConfig, _is_number, load_config
from pipelines.tuning.study import search, warm_starts
from tests.conftest import isolated_env


def numeric_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, list]]:
    """(dotted path, the field's metadata) of every number in the config tree, derived from the models."""
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += numeric_fields(annotation, f"{prefix}{name}.")
        elif _is_number(annotation):
            out.append((f"{prefix}{name}", field.metadata))
    return out


def out_of_range(metadata: list) -> list[float]:
    bad = []
    for m in metadata:
        if isinstance(m, at.Ge | at.Gt):
            bad.append((m.ge if isinstance(m, at.Ge) else m.gt) - 1)
        if isinstance(m, at.Le | at.Lt):
            bad.append((m.le if isinstance(m, at.Le) else m.lt) + 1)
    return bad


FIELDS = numeric_fields(PipelineConfig)
RANGES = [path for path in FIELDS if ".space." in path[0]]


def test_the_tree_has_the_numbers_we_fuzz():
    paths = {p for p, _ in FIELDS}
    assert {"tune.n_trials", "distill.temperature", "student.train.lr", "tune.space.alpha.high"} <= paths
    assert len(FIELDS) > 40


@pytest.mark.parametrize("path,metadata", FIELDS, ids=[p for p, _ in FIELDS])
def test_a_bad_number_is_refused_naming_its_field(path, metadata):
    for value in (".nan", ".inf", "-.inf", "true", "false", "abc", "[1]", *map(repr, out_of_range(metadata))):
        with pytest.raises(ConfigError) as caught:
            load_config("digits", [f"{path}={value}"])
        message = str(caught.value)
        assert "\n" not in message and (path in message or path.rsplit(".", 1)[0] in message), (value, message)


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("tune.space.temperature={low: -5, high: -1}", "distill.temperature's own limits"),
        ("tune.space.alpha={low: -1, high: 3}", "distill.alpha's own limits"),
        ("tune.space.alpha.high=3", "tune.space.alpha.high=3 is outside distill.alpha"),
        ("tune.space.lr={low: 0.01, high: 20}", "student.train.lr's own limits"),
        ("tune.space.weight_decay={low: 0, high: 0.1, log: true}", "low > 0 on a log scale"),
    ],
)
def test_search_ranges_stay_inside_their_parameters_limits(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        load_config("digits", [override])


def test_a_warm_start_outside_its_range_starts_at_the_nearest_end():
    # the preset's weight_decay 0 with a log-scale range: Optuna refuses 0 for log=True
    cfg = load_config("digits", ["student.train.weight_decay=0", "distill.temperature=20", "tune.n_trials=1"])
    (start,) = warm_starts(cfg)
    assert start["weight_decay"] == cfg.tune.space.weight_decay.low and start["temperature"] == 8.0
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(start)
    trial = study.ask()
    _, params = search(trial, cfg)
    assert params["weight_decay"] == cfg.tune.space.weight_decay.low and math.isfinite(params["temperature"])


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["tune.space.alpha.high=.inf"], "tune.space.alpha.high: Input should be a finite number"),
        (["tune.n_trials=true"], "tune.n_trials: Value error, must be a number, not true"),
        (["distill.method=at"], "distill.method=at cannot distil teacher.arch=cnn_medium into student.arch=mlp"),
    ],
)
def test_the_command_line_refuses_in_one_line_before_any_training(tmp_path, overrides, fragment):
    args = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", *args],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and fragment in proc.stderr, proc.stderr
    assert not (tmp_path / "mlruns" / "mlflow.db").exists() and not (tmp_path / "mlruns" / "cache" / "teacher").exists()
