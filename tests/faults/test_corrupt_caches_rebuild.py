"""A truncated cache entry (prepared data, teacher, teacher logits or views, validation outputs) is reported in
one line, deleted and rebuilt; the run still succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cache.checkpoint import save_atomic
from pipelines.cache.keys import file_record, record_path, verified_entry
from tests.conftest import TINY

# One thread in every run: with `auto`, the count follows the host's other kdflow processes, and a teacher retrained
# with another count has other weights, so its logits get another cache key and the damaged entry is never read.
REFIT = ["--set", "tune.refit=train+val", "--set", "tune.n_trials=1", "--set", "runtime.threads=1"]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def entries(tmp_path: Path, kind: str, pattern: str = "*.pt") -> list[Path]:
    return sorted((tmp_path / "mlruns" / "cache" / kind).glob(pattern))


def assert_rebuilt(proc, damaged: list[Path]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "is corrupt (size/digest mismatch); rebuilding" in line]
    for path in damaged:
        assert sum(path.name in line for line in warnings) == 1, (path, warnings)
        assert json.loads(record_path(path).read_text()) == file_record(path)  # written again, whole


def test_truncated_data_teacher_logits_and_validation_outputs_are_rebuilt(kdflow, tmp_path):
    proc, _ = kdflow("run", *TINY, *REFIT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logits = [p for p in entries(tmp_path, "logits") if not p.name.endswith(".val.pt")]
    damaged = [*entries(tmp_path, "data"), *entries(tmp_path, "teacher"), *entries(tmp_path, "logits")]
    assert len(logits) == 1 and len(damaged) == 4, damaged  # data, teacher checkpoint, train and val logits
    for path in damaged:
        truncate(path)
    proc, summary = kdflow("run", *TINY, *REFIT)
    assert_rebuilt(proc, damaged)
    assert "teacher: reusing" not in proc.stderr  # retrained, not trusted
    assert summary["models"]["student"]["test_acc"] > 0


def test_truncated_teacher_views_are_rebuilt(kdflow, tmp_path):
    views = ["--set", "data.augment=crop_flip", "--set", "distill.teacher_views=2"]
    proc, _ = kdflow("run", *TINY, *REFIT, *views)
    assert proc.returncode == 0, proc.stderr[-3000:]
    damaged = entries(tmp_path, "views")
    assert len(damaged) == 2, damaged  # train and validation views
    for path in damaged:
        truncate(path)
    proc, _ = kdflow("run", *TINY, *REFIT, *views)
    assert_rebuilt(proc, damaged)


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "no record"])
def test_a_damaged_entry_is_refused_and_deleted(tmp_path, damage, caplog):
    path = save_atomic({"x": list(range(100))}, tmp_path / "entry.pt")
    assert verified_entry(path)
    if damage == "truncate":
        truncate(path)
    elif damage == "flip a byte":
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    else:
        record_path(path).unlink()
    assert not verified_entry(path)
    assert not path.exists() and not record_path(path).exists()
    assert "is corrupt" in caplog.text and "rebuilding" in caplog.text
