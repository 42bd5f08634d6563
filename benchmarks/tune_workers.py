"""Trials per hour with 1 and 2 local tuning workers, each pinned to one core with one torch thread.

    nice python benchmarks/tune_workers.py [--trials 6] [--epochs 10] [--repeats 2]

Both arms start their workers as processes (same start-up cost), share one SQLite study each, and
count finished trials from the first trial's start to the last one's end. The arms alternate
(1, 2, 1, 2, ...) so load drift on a shared machine hits both; prints every rate and the median ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
from private_store import private_store  # noqa: E402

from pipelines.config.schema import load_config  # noqa: E402
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student  # noqa: E402
from pipelines.tracking.runs import setup_experiment  # noqa: E402
from pipelines.tuning.study import open_study  # noqa: E402
from pipelines.tuning.worker_processes import LocalWorkers  # noqa: E402


def one_core_each(cfg, job, n):
    return LocalWorkers(cfg, job, n, threads=1, pin_cores=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with private_store() as store:
        base = [
            "runtime.device=cpu",
            store,
            "teacher.train.epochs=3",
            "tune.pruner=none",
            f"tune.n_trials={args.trials}",
            f"tune.epochs={args.epochs}",
        ]
        cfg = load_config("digits", base)
        experiment = setup_experiment(cfg)
        rates: dict[int, list[float]] = {1: [], 2: []}
        with mlflow.start_run(experiment_id=experiment) as parent:
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, parent.info.run_id)
            logits = compute_teacher_logits(cfg, data, teacher)
            for rep in range(1, args.repeats + 1):
                for n in (1, 2):
                    cfg_n = load_config(
                        "digits", [*base, f"tune.n_workers={n}", f"tune.study_name=bench-{n}-workers-{rep}"]
                    )
                    started = time.perf_counter()
                    result = tune_student(cfg_n, data, teacher, logits, parent.info.run_id, launch=one_core_each)
                    seconds = time.perf_counter() - started
                    finished = result.complete + result.pruned
                    # Throughput once workers are up: first trial start to last trial end (process start-up excluded).
                    trials = [
                        t for t in open_study(cfg_n, result.study_name, args.epochs).trials if t.state.is_finished()
                    ]
                    span = (
                        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
                    ).total_seconds()
                    rates[n].append(finished / span * 3600)
                    print(
                        f"rep {rep} {n} worker(s): {finished} trials; stage wall {seconds:.1f} s (with start-up); "
                        f"trials running for {span:.1f} s = {rates[n][-1]:.0f} trials/hour  "
                        f"load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    ratio = statistics.median(two / one for one, two in zip(rates[1], rates[2]))
    print(
        f"median: 1 worker {statistics.median(rates[1]):.0f} trials/hour, "
        f"2 workers {statistics.median(rates[2]):.0f} trials/hour"
    )
    print(
        f"ratio 2 workers / 1 worker: {ratio:.2f}x (median of {args.repeats} interleaved pairs; "
        f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
