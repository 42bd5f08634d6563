"""Config validation: one line naming the field, exit status 2, before any work starts."""

import pytest

from pipelines.config.schema import ConfigError, load_config


def test_defaults_and_overrides_are_typed():
    cfg = load_config("digits", ["tune.n_trials=5", "distill.temperature=2.5", "teacher.arch=cnn_small"])
    assert cfg.tune.n_trials == 5 and cfg.distill.temperature == 2.5 and cfg.teacher.arch == "cnn_small"
    flat = cfg.flat()
    assert flat["teacher.arch"] == "cnn_small" and flat["distill.temperature"] == 2.5


def test_one_bound_of_a_search_range_changes_alone():
    default = load_config("digits").tune.space.alpha
    cfg = load_config("digits", ["tune.space.alpha.high=0.8"])
    assert (cfg.tune.space.alpha.low, cfg.tune.space.alpha.high) == (default.low, 0.8)
    with pytest.raises(ConfigError, match="tune.space.alpha: Value error, needs low < high"):
        load_config("digits", [f"tune.space.alpha.low={default.high}"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("teacher.trian.epochs=3", "invalid config: teacher.trian: unknown key"),
        ("tune.n_trials=many", "invalid config: tune.n_trials: Input should be a valid integer"),
        ("distill.alpha=1.5", "invalid config: distill.alpha: Input should be less than or equal to 1"),
        ("distill.temperature=0", "invalid config: distill.temperature: Input should be greater than 0"),
        ("student.arch=resnet9000", "invalid config: student.arch: Value error, unknown model 'resnet9000'"),
        ("runtime.device=tpu", "invalid config: runtime.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
        ("runtime.precision=fp16", "invalid config: runtime.precision: Input should be 'auto', 'fp32' or 'bf16'"),
        (
            "runtime.channels_last=maybe",
            "invalid config: runtime.channels_last: Value error, choose auto, true or false",
        ),
        ("runtime.compile=sometimes", "invalid config: runtime.compile: Input should be a valid boolean"),
    ],
)
def test_invalid_config_names_the_field(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("digits", [override])
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="preset 'nope' not found; use one of .*digits"):
        load_config("nope")


def test_cli_rejects_bad_config_with_exit_2_before_any_work(kdflow, tmp_path):
    proc, summary = kdflow("run", "--set", "tune.n_trials=-1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kdflow: invalid config: tune.n_trials: Input should be greater than or equal to 0"
    assert summary is None
    assert not (tmp_path / "mlruns").exists()  # nothing was started or written


def test_speed_settings_reach_the_training_loop():
    """Defaults keep the CPU path plain (auto = fp32, contiguous there); overrides land in TrainSettings."""
    from pipelines.training.model_run import settings_for

    cfg = load_config("digits", ["runtime.device=cpu"])
    s = settings_for(cfg.student.train, cfg)
    assert (s.precision, s.channels_last, s.compile) == ("auto", "auto", False)
    cfg = load_config(
        "digits", ["runtime.device=cpu", "runtime.precision=bf16", "runtime.channels_last=true", "runtime.compile=true"]
    )
    s = settings_for(cfg.teacher.train, cfg)
    assert (s.precision, s.channels_last, s.compile) == ("bf16", True, True)
    assert cfg.flat()["runtime.channels_last"] is True
