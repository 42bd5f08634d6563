"""The standing GPU check runs its dry run on the CPU and writes the report a GPU window will fill in."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKS = [
    "cuda_tests",
    "ddp_teacher",
    "loop_vs_plain_fp32",
    "loop_vs_plain_bf16",
    "time_to_accuracy",
    "vectorised_trials",
    "onnx_parity",
]


def test_dry_run_writes_a_json_and_markdown_report(tmp_path):
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["schema"] == 1 and report["dry_run"] is True
    assert {"torch", "cuda_available", "gpus", "bf16_native", "nccl_available", "cpu_count"} <= set(report["machine"])
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == CHECKS
    for c in checks.values():
        assert c["status"] in ("passed", "skipped"), c
        assert {"reason", "seconds", "command", "figures", "output_tail"} <= set(c)
        if c["status"] == "skipped":
            assert c["reason"]  # a skip always says why
    assert report["summary"]["failed"] == 0
    assert report["summary"]["passed"] + report["summary"]["skipped"] == len(CHECKS)

    if not report["machine"]["cuda_available"]:  # the dry run says what it could not check here
        assert checks["cuda_tests"]["figures"].get("skipped", 0) >= 20  # collected, then skipped by pytest
        assert "no CUDA GPU here" in checks["cuda_tests"]["reason"]
        assert "gloo" in checks["ddp_teacher"]["reason"]
    ddp = checks["ddp_teacher"]["figures"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and 0 <= ddp["test_acc"] <= 1
    assert len(checks["time_to_accuracy"]["figures"]["table"]) == 4  # header, separator, fp32, bf16
    for name in ("loop_vs_plain_fp32", "loop_vs_plain_bf16"):
        if checks[name]["status"] == "passed":
            assert len(checks[name]["figures"]["table"]) == 4  # header, separator, student, teacher
    markdown = (tmp_path / "gpu-check.md").read_text()
    assert markdown.startswith("# GPU check (dry run on the CPU)")
    assert all(f"| {name} |" in markdown for name in CHECKS)
