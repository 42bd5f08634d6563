"""A preset file without `name:` is named after the file, not filed under the default pipeline (digits)."""

from __future__ import annotations

import pytest

from pipelines.config.overrides import resolve_config
from pipelines.config.schema import ConfigError, load_config


def test_a_preset_file_without_a_name_takes_its_stem(tmp_path):
    preset = tmp_path / "blood-cells.yaml"
    preset.write_text("data: {dataset: digits}\nteacher: {arch: mlp}\n")
    cfg = load_config(str(preset))
    assert cfg.name == "blood-cells"
    assert resolve_config("digits", cfg).name == "blood-cells"  # what the CLI hands the flow keeps it


def test_an_explicit_name_wins_and_a_bad_stem_is_refused(tmp_path):
    named = tmp_path / "file.yaml"
    named.write_text("name: mine\n")
    assert load_config(str(named)).name == "mine"
    spaced = tmp_path / "my preset.yaml"
    spaced.write_text("data: {dataset: digits}\n")
    with pytest.raises(ConfigError, match="name"):
        load_config(str(spaced))
