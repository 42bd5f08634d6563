"""The seeded chaos script, three kills: `kdflow run` (SIGKILL of its whole process group, mid-run), `kdflow ingest`
(SIGTERM) and `kdflow retrain --pipeline` (SIGKILL), each run again, the stores checked after every step; all three
survived. The benchmark runs more (benchmarks/README.md: 30 kills); SIGTERM of a run mid-tuning has its own test
(test_sigterm_ends_runs.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines.stores.integrity import check_store
from tests.conftest import ROOT, isolated_env


def test_three_seeded_kills_one_per_command_are_survived(tmp_path):
    out = tmp_path / "steps.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--kills", "3", "--quick", "--seed", "2"]
        + ["--workdir", str(tmp_path / "chaos"), "--output", str(out)],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "kills survived: 3/3" in proc.stdout
    steps = [s for s in json.loads(out.read_text()) if s["landed"]]
    assert {s["kind"] for s in steps} == {"run", "ingest", "retrain"}
    assert all(s["survived"] for s in steps)
    final = check_store(tmp_path / "chaos" / "mlruns")
    assert final.ok, final.problems
