"""Two `kdflow run`s at once on one host vs one alone: runtime.threads=auto vs torch's default threads.

    nice python benchmarks/concurrent_runs.py --quick            # ~10-20 minutes on a 2-core box
    python benchmarks/concurrent_runs.py                         # the digits preset's own budget

For each arm, one `kdflow run` alone, then two started together, each in its own fresh folder (own
MLflow / Optuna stores, own Prefect home, so nothing is cached between runs); arms interleave
(auto alone, auto pair, old alone, old pair, ...) so load drift hits both. The old behaviour is emulated with
`--set runtime.threads=<cores>` (torch's default: one thread per core in every process). Children get no
OMP_NUM_THREADS / KDFLOW_PROCESSES_PER_HOST, so auto counts the runs itself. Prints each run's wall time,
the ratio two-at-once / alone per arm (goal: <= 1.1x with auto) and auto alone / old alone (goal: ~1.0x).
`--quick` cuts the budget (teacher 10 epochs, student 15, 6 trials x 10 epochs) so a run takes 1-2 minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["teacher.train.epochs=10", "student.train.epochs=15", "tune.n_trials=6", "tune.epochs=10"]


def run_env(home: Path) -> dict[str, str]:
    drop = ("PREFECT_", "MLFLOW_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KDFLOW_PROCESSES_PER_HOST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def start(overrides: list[str], scratch: Path) -> tuple[subprocess.Popen, Path, float]:
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    cmd = [sys.executable, "-m", "flows.cli", "run", *[a for o in overrides for a in ("--set", o)]]
    log = (folder / "out.log").open("w")
    proc = subprocess.Popen(cmd, cwd=folder, env=run_env(folder), stdout=log, stderr=subprocess.STDOUT, text=True)
    return proc, folder, time.perf_counter()


def wait_all(started: list[tuple[subprocess.Popen, Path, float]]) -> list[float]:
    """Each run's wall time, read when that run ends (polled, so a pair's second run is not timed by the first)."""
    ended: dict[int, float] = {}
    while len(ended) < len(started):
        for i, (proc, _, _) in enumerate(started):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.perf_counter()
        time.sleep(0.2)
    for proc, folder, _ in started:
        if proc.returncode != 0:
            tail = (folder / "out.log").read_text()[-2000:]
            raise SystemExit(f"kdflow run in {folder} failed (exit {proc.returncode}):\n{tail}")
    return [ended[i] - t0 for i, (_, _, t0) in enumerate(started)]


def threads_line(folder: Path) -> str:
    lines = [x for x in (folder / "out.log").read_text().splitlines() if "torch thread(s)" in x and "run:" in x]
    return lines[0].split("run:", 1)[1].strip() if lines else "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced budget: " + ", ".join(QUICK))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--repeats", type=int, default=1, help="alone + pair measurements per arm")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads of the old-behaviour arm")
    a = p.parse_args()
    base = (QUICK if a.quick else []) + a.overrides
    arms = {"auto": base + ["runtime.threads=auto"], f"old ({a.cores} threads)": base + [f"runtime.threads={a.cores}"]}
    print(
        f"digits preset, overrides {base or 'none'}; os.cpu_count()={os.cpu_count()}; "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    alone: dict[str, list[float]] = {arm: [] for arm in arms}
    pair: dict[str, list[float]] = {arm: [] for arm in arms}
    loads = []
    with tempfile.TemporaryDirectory(prefix="kdflow-concurrent-") as scratch:
        for rep in range(a.repeats):
            for arm, overrides in arms.items():
                loads.append(os.getloadavg()[0])
                one = start(overrides, Path(scratch))
                alone[arm] += wait_all([one])
                two = [start(overrides, Path(scratch)) for _ in range(2)]
                pair[arm] += wait_all(two)
                print(
                    f"rep {rep + 1} {arm}: alone {alone[arm][-1]:.1f} s [{threads_line(one[1])}]; "
                    f"two at once {pair[arm][-2]:.1f} s and {pair[arm][-1]:.1f} s [{threads_line(two[0][1])}]; "
                    f"load before {loads[-1]:.1f}",
                    flush=True,
                )
    print(
        f"\n| arm | alone (s) | two at once, each (s) | two at once / alone |  load average {min(loads):.1f}-"
        f"{max(loads + [os.getloadavg()[0]]):.1f}"
    )
    print("|---|---|---|---|")
    for arm in arms:
        one, two = statistics.median(alone[arm]), statistics.mean(pair[arm])
        print(f"| {arm} | {one:.1f} | {' / '.join(f'{s:.1f}' for s in pair[arm])} | **{two / one:.2f}x** |")
    first, second = arms
    print(f"\nauto alone / old alone: {statistics.median(alone[first]) / statistics.median(alone[second]):.2f}x")


if __name__ == "__main__":
    main()
