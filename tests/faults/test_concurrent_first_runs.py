"""Two `kdflow run`s started at once in a new folder both finish, train the teacher once, and leave a usable store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.conftest import isolated_env

TINY = [
    *("--set", "teacher.train.epochs=2", "--set", "student.train.epochs=1"),
    *("--set", "tune.n_trials=2", "--set", "tune.epochs=1"),
]


def start_run(folder, name):
    cmd = [sys.executable, "-m", "flows.cli", "run", *TINY]
    log = open(folder / f"{name}.log", "w")  # noqa: SIM115 - closed by the OS when the test ends
    return subprocess.Popen(cmd, cwd=folder, env=isolated_env(folder), stdout=log, stderr=subprocess.STDOUT, text=True)


def teacher_runs(folder) -> int:
    with sqlite3.connect(folder / "mlruns" / "mlflow.db") as db:
        (n,) = db.execute("select count(*) from tags where key = 'kdflow.stage' and value = 'teacher'").fetchone()
    return n


def test_two_first_runs_at_once_both_finish_and_share_one_teacher(tmp_path):
    first, second = start_run(tmp_path, "a"), start_run(tmp_path, "b")
    codes = [first.wait(timeout=600), second.wait(timeout=600)]
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("a", "b")}
    assert codes == [0, 0], logs
    assert teacher_runs(tmp_path) == 1, logs  # the second run waited for the first one's teacher
    assert sum("teacher: reusing" in text for text in logs.values()) == 1, logs

    third = start_run(tmp_path, "c")
    assert third.wait(timeout=600) == 0, (tmp_path / "c.log").read_text()
    assert "teacher: reusing" in (tmp_path / "c.log").read_text()
    assert teacher_runs(tmp_path) == 1
