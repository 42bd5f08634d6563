"""docs/config.md is generated from the config models; it must match what `kdflow run` accepts today."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_config_reference_is_current():
    done = subprocess.run(
        [sys.executable, "scripts/config_reference.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_config_reference_lists_every_key_of_every_preset():
    from pipelines.config.schema import load_config, preset_names

    reference = (ROOT / "docs" / "config.md").read_text()
    for preset in preset_names():
        for key in load_config(preset).flat():
            assert f"`{key}`" in reference, f"{key} ({preset}) missing from docs/config.md"
