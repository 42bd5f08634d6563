"""Seeded chaos: kill `kdflow run`, `kdflow ingest` and `kdflow retrain --pipeline` at random moments, run the same
command again, and check the stores after every step (pipelines/stores/integrity.py).

Each kill is SIGKILL (the command's whole process group: its tuning workers and temporary Prefect server die with
it, as when a container is killed) or SIGTERM (the command alone, as `kill PID`; it must stop its workers itself and
exit within --stop-within seconds). The moment is uniform over the command's last measured duration. A kill is
survived when the command stopped, the same command run again finished with exit 0, and the integrity check found
nothing wrong: no run or trial left RUNNING, every registered version loads, the champion never moved to a version
that scored worse on the test data both were scored on, every batch matches its manifest, every cache entry verifies.

    OMP_NUM_THREADS=1 nice python benchmarks/chaos.py --kills 30 --seed 0     # ~30 min on a 2-core CPU
    python benchmarks/chaos.py --kills 3 --quick --seed 2                        # what tests/faults/test_chaos.py runs

Prints one line per kill and `kills survived: S/N`; exits 1 if any kill was not survived.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.stores.integrity import check_store  # noqa: E402

PIPELINE = "digits"
SMALL = {
    "teacher.train.epochs": 2,
    "student.train.epochs": 2,
    "tune.n_trials": 4,
    "tune.epochs": 2,
    "tune.n_workers": 2,
    "tune.heartbeat_seconds": 5,  # a killed worker's trial is found dead 30 s later, by the next run
    "tune.grace_seconds": 30,  # not less: on a loaded box a live worker's beat can be late by seconds
}
QUICK = {
    **SMALL,
    **{"teacher.train.epochs": 1, "student.train.epochs": 1, "tune.n_trials": 2, "tune.epochs": 1, "tune.n_workers": 1},
    "evaluate.timing_seconds": 0.2,
}
KINDS = ("run", "ingest", "retrain")


@dataclass
class Step:
    number: int
    kind: str
    signal: str
    after_s: float  # when the signal was sent, from the command's start
    landed: bool  # the command was still running when the signal was sent
    stopped_s: float | None  # from the signal to the command's exit
    rerun_rc: int
    rerun_s: float
    problems: list[str]
    survived: bool

    def line(self) -> str:
        if not self.landed:
            head = f"{self.kind} ended before its {self.signal} at {self.after_s:.1f} s (not counted)"
        else:
            head = f"{self.signal} {self.kind} at {self.after_s:.1f} s, stopped in {self.stopped_s:.1f} s"
        if self.problems:
            verdict = "NOT survived: " + "; ".join(self.problems)
        else:
            verdict = "survived" if self.landed else "store whole"
        return f"{head}; rerun exit {self.rerun_rc} in {self.rerun_s:.1f} s; {verdict}"


def write_batches(folder: Path, n: int, seed: int) -> list[Path]:
    """`n` batches of new digits: sklearn's images, shifted and lightly noised so every sample is new."""
    from sklearn.datasets import load_digits

    d, rng = load_digits(), np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        pick = rng.choice(len(d.target), 150, replace=False)
        images = np.roll(d.images[pick], (int(rng.integers(-1, 2)), int(rng.integers(-1, 2))), axis=(1, 2))
        pixels = np.clip(images * 255 / 16 + rng.normal(0, 8, images.shape), 0, 255).astype(np.uint8)
        np.savez(folder / f"batch{i:03d}.npz", inputs=pixels, labels=d.target[pick])
        out.append(folder / f"batch{i:03d}.npz")
    return out


class Chaos:
    def __init__(self, workdir: Path, settings: dict, seed: int, stop_within: float, command_timeout: float):
        self.dir, self.rng = workdir, random.Random(seed)
        self.stop_within, self.command_timeout = stop_within, command_timeout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
        self.env.update(
            PREFECT_HOME=str(workdir / "prefect"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            KDFLOW_HEARTBEAT_S="5",
        )
        self.sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
        self.batches = write_batches(workdir / "incoming", 200, seed)
        self.next_batch = 0
        self.durations: dict[str, float] = {}
        self.champions: dict[str, str] = {}
        self.loaded: set[str] = set()

    def command(self, kind: str) -> list[str]:
        cli = [sys.executable, "-m", "flows.cli"]
        if kind == "run":
            return [*cli, "run", "--preset", PIPELINE, *self.sets]
        if kind == "ingest":
            return [*cli, "ingest", str(self.batches[self.next_batch]), "--pipeline", PIPELINE]
        return [*cli, "retrain", "--pipeline", PIPELINE, "--mode", "student_only", "--tolerance", "0"]

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=self.dir,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches its workers and server too
        )

    def complete(self, argv: list[str], log: Path) -> tuple[int, float]:
        started = time.monotonic()
        proc = self.start(argv, log)
        try:
            rc = proc.wait(timeout=self.command_timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            rc = -1
        return rc, time.monotonic() - started

    def check(self) -> list[str]:
        report = check_store(self.dir / "mlruns", self.champions, tolerance=0.0, loaded_before=self.loaded)
        self.champions, self.loaded = report.champions, report.loaded
        return report.problems

    def warm_up(self) -> list[str]:
        """One unkilled command of each kind: a champion to retrain, a first batch, and their durations."""
        problems = []
        for kind in KINDS:
            rc, seconds = self.complete(self.command(kind), self.dir / f"warmup-{kind}.log")
            if rc != 0:
                problems.append(f"warm-up {kind} exited {rc}: {tail(self.dir / f'warmup-{kind}.log')}")
            self.durations[kind] = seconds
            self.next_batch += kind == "ingest"
        return problems + self.check()

    def step(self, number: int, kind: str, sig: signal.Signals) -> Step:
        if kind == "retrain":  # a new batch first, unkilled: the retraining killed has something to learn
            rc, _ = self.complete(self.command("ingest"), self.dir / f"kill{number:03d}-new-batch.log")
            self.next_batch += rc == 0
        argv = self.command(kind)
        after = self.rng.uniform(0.05, 0.95) * self.durations[kind]
        log = self.dir / f"kill{number:03d}-{kind}.log"
        proc = self.start(argv, log)
        try:
            proc.wait(timeout=after)
        except subprocess.TimeoutExpired:
            pass
        landed = proc.poll() is None
        problems, stopped = [], None
        if landed:
            sent = time.monotonic()
            if sig == signal.SIGKILL:
                kill_group(proc)
            else:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=self.stop_within)
                except subprocess.TimeoutExpired:
                    problems.append(f"still running {self.stop_within:g} s after SIGTERM")
                    kill_group(proc)
            stopped = time.monotonic() - sent
        proc.wait()
        if group_alive(proc.pid):
            time.sleep(5)  # a worker finishing its own SIGTERM
            if group_alive(proc.pid):
                problems.append("processes of the killed command were left running")
                kill_group(proc)
        rc, seconds = self.complete(argv, self.dir / f"kill{number:03d}-{kind}-rerun.log")
        if rc != 0:
            problems.append(f"rerun exited {rc}: {tail(self.dir / f'kill{number:03d}-{kind}-rerun.log')}")
        else:
            self.durations[kind] = seconds
        if kind == "ingest":
            self.next_batch += 1
        problems += self.check()
        return Step(number, kind, sig.name, after, landed, stopped, rc, seconds, problems, landed and not problems)

    def run(self, kills: int) -> list[Step]:
        steps: list[Step] = []
        order: list[str] = []
        while sum(s.landed for s in steps) < kills and len(steps) < 3 * kills:
            if not order:  # every kind equally often, in a seeded order
                order = list(KINDS)
                self.rng.shuffle(order)
            kind = order.pop()
            sig = self.rng.choice([signal.SIGKILL, signal.SIGTERM])
            s = self.step(len(steps) + 1, kind, sig)
            steps.append(s)
            print(f"step {s.number}: {s.line()}", flush=True)
        return steps


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(log: Path, n: int = 300) -> str:
    return " ".join(log.read_text(errors="replace")[-n:].split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=30, help="kills that land on a running command (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="one-epoch settings, two trials (the test's)")
    p.add_argument("--workdir", type=Path, help="where the stores go (default: a new temporary folder, kept)")
    p.add_argument("--stop-within", type=float, default=60, help="seconds a SIGTERMed command may take to exit")
    p.add_argument("--command-timeout", type=float, default=900, help="seconds a rerun may take")
    p.add_argument("--output", type=Path, help="write the steps as JSON here")
    args = p.parse_args(argv)
    if args.kills < 1:
        p.error("--kills must be at least 1")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # the checks' store opening, not news
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kdflow-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    chaos = Chaos(workdir, QUICK if args.quick else SMALL, args.seed, args.stop_within, args.command_timeout)
    print(f"chaos: {args.kills} kills, seed {args.seed}, stores in {workdir}", flush=True)
    warm = chaos.warm_up()
    if warm:
        print("warm-up failed: " + "; ".join(warm), flush=True)
        return 1
    steps = chaos.run(args.kills)
    landed = [s for s in steps if s.landed]
    survived = sum(s.survived for s in landed)
    by_kind = {k: f"{sum(s.survived for s in landed if s.kind == k)}/{sum(s.kind == k for s in landed)}" for k in KINDS}
    print(
        f"kills survived: {survived}/{len(landed)} ({', '.join(f'{k} {v}' for k, v in by_kind.items())}; "
        f"{sum(s.signal == 'SIGKILL' for s in landed)} SIGKILL, {sum(s.signal == 'SIGTERM' for s in landed)} SIGTERM) "
        f"in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    if args.output:
        args.output.write_text(json.dumps([asdict(s) for s in steps], indent=2))
    return 0 if survived == len(landed) == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
