"""When a fault test's run does not end, its failure shows where every process of the run was stuck.

A hang seen once in CI cannot be rerun there; py-spy reads the Python stacks of live processes without
stopping them, so the failure message carries the evidence."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (workers, the temporary Prefect server in its own session)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def stacks(pid: int) -> str:
    if shutil.which("py-spy") is None:
        return "(install py-spy to see the stacks of the processes that did not end)"
    dumps = []
    for p in descendants(pid):
        try:
            out = subprocess.run(["py-spy", "dump", "--pid", str(p)], capture_output=True, text=True, timeout=30)
            dumps.append(out.stdout or out.stderr)
        except subprocess.TimeoutExpired:
            dumps.append(f"py-spy timed out on {p}")
    return "\n".join(dumps)


def wait_or_show_stacks(proc: subprocess.Popen, timeout: float, log: Path) -> int:
    """proc's exit code; if it has not ended within `timeout` s, fail with every process's Python stack."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        tail = log.read_text()[-3000:]
        raise AssertionError(
            f"still running {timeout:.0f} s after the signal; stacks:\n{stacks(proc.pid)}\nlog:\n{tail}"
        ) from None
