"""The seeded chaos script, five kills: `kdflow run`, `kdflow ingest` and `kdflow retrain --pipeline` killed at random
moments (SIGKILL and SIGTERM), each run again, the stores checked after every step; all five survived."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines.stores.integrity import check_store
from tests.conftest import ROOT, isolated_env


def test_five_seeded_kills_are_survived(tmp_path):
    out = tmp_path / "steps.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--kills", "5", "--quick", "--seed", "1"]
        + ["--workdir", str(tmp_path / "chaos"), "--output", str(out)],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "kills survived: 5/5" in proc.stdout
    steps = [s for s in json.loads(out.read_text()) if s["landed"]]
    assert {s["kind"] for s in steps} == {"run", "ingest", "retrain"}
    assert all(s["survived"] for s in steps)
    final = check_store(tmp_path / "chaos" / "mlruns")
    assert final.ok, final.problems
