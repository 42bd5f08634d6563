"""retrain.* settings: each strategy's options are its own section, derived from its file; the former shared keys
(old presets, --set lines, the params of lineages registered before) keep their meaning."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from pipelines.config.schema import ConfigError, PipelineConfig, RetrainSection, load_config, validate
from pipelines.lifelong.continual import retrain_settings
from pipelines.lifelong.lineage import config_from_params
from pipelines.lifelong.strategies import strategy_options


def test_the_former_shared_keys_set_each_strategys_own_options():
    former = validate({"retrain": {"buffer_size": 500, "alpha": 0.7, "beta": 0.4, "replay_batch_size": 16}}).retrain
    assert (former.derpp.buffer_size, former.derpp.logit_weight, former.derpp.label_weight) == (500, 0.7, 0.4)
    assert former.derpp.replay_batch_size == 16 and former.lwf.kd_weight == 0.7  # alpha was both strategies' weight
    same = {"derpp": {"buffer_size": 500, "logit_weight": 0.7, "label_weight": 0.4, "replay_batch_size": 16}}
    assert validate({"retrain": {**same, "lwf": {"kd_weight": 0.7}}}).retrain == former


def test_a_preset_giving_a_setting_under_both_names_must_agree(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("retrain:\n  alpha: 0.5\n  derpp:\n    logit_weight: 0.3\n")
    with pytest.raises(ConfigError, match=r"retrain\.alpha .*retrain\.derpp\.logit_weight"):
        load_config(str(preset))
    preset.write_text("retrain:\n  alpha: 0.3\n  derpp:\n    logit_weight: 0.3\n")
    assert load_config(str(preset)).retrain.lwf.kd_weight == 0.3


def test_an_override_with_a_former_key_replaces_the_presets_value_and_the_last_one_wins():
    retrain = load_config("split_fmnist", ["retrain.alpha=0.5", "retrain.derpp.logit_weight=0.3"]).retrain
    assert (retrain.derpp.logit_weight, retrain.lwf.kd_weight, retrain.derpp.replay_batch_size) == (0.3, 0.5, 128)
    assert load_config("split_fmnist", ["retrain.replay_batch_size=8"]).retrain.derpp.replay_batch_size == 8


def test_a_lineage_registered_with_the_former_keys_keeps_its_settings():
    """The params a version registered before the move logged: flat retrain.* keys, alpha at its old default."""
    params = {
        k: "" if v is None else str(v) for k, v in PipelineConfig().flat().items() if not k.startswith("retrain.")
    }
    params |= {"retrain.strategy": "lwf", "retrain.buffer_size": "300", "retrain.alpha": "0.2", "retrain.beta": "1.0"}
    params |= {"retrain.replay_batch_size": "32", "retrain.tolerance": "0.02", "retrain.policy": "continual"}
    retrain = config_from_params(params).retrain
    assert retrain.strategy == "lwf" and retrain.lwf.kd_weight == 0.2 and retrain.derpp.buffer_size == 300
    # and a version registered now reads back as it was written
    now = load_config("split_fmnist", ["retrain.lwf.temperature=3"])
    logged = {k: "" if v is None else str(v) for k, v in now.flat().items()}
    assert config_from_params(logged).retrain == now.retrain


def test_changes_replace_single_options_of_the_lineages_section():
    lineage = SimpleNamespace(cfg=load_config("digits", ["retrain.derpp.buffer_size=500"]))
    changed = retrain_settings(lineage, {"derpp": {"logit_weight": 0.5}})
    assert changed.derpp.buffer_size == 500 and changed.derpp.logit_weight == 0.5
    assert retrain_settings(lineage, {"replay_batch_size": 8}).derpp.replay_batch_size == 8  # a former key too


def test_an_empty_lwf_temperature_is_the_models_distillation_temperature():
    lwf = RetrainSection(strategy="lwf")
    assert strategy_options(lwf, temperature=4.0) == {"kd_weight": 0.2, "temperature": 4.0}  # as before the move
    fixed = RetrainSection(strategy="lwf", lwf={"temperature": 2.5})
    assert strategy_options(fixed, temperature=4.0)["temperature"] == 2.5
    assert strategy_options(RetrainSection(strategy="finetune"), temperature=4.0) == {}
    assert strategy_options(RetrainSection(), temperature=4.0)["replay_batch_size"] == 32


@pytest.mark.parametrize(
    "setting, message",
    [
        ("retrain.derpp.buffer_sise=5", "buffer_size"),  # a misspelt option: did you mean
        ("retrain.derpp.buffer_size=0", "retrain.derpp.buffer_size"),
        ("tune.n_trials=5", "expected retrain.KEY=VALUE"),
    ],
)
def test_kdflow_retrain_refuses_a_bad_setting_before_any_work(tmp_path, setting, message):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "retrain",
            "--pipeline",
            "none",
            "--store",
            str(tmp_path),
            "--set",
            setting,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())  # one line, nothing written
