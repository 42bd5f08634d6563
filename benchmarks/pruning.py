"""Pruned vs unpruned search at the same trial budget: wall time and best validation accuracy.

    nice python benchmarks/pruning.py                                  # 6-8 minutes on a busy 2-core box
    python benchmarks/pruning.py --preset digits --trials 16 --epochs 30 --limit-train 0

The pipeline's own stages (prepare_data, train_teacher, teacher_logits, tune_student; no Prefect) on a
Fashion-MNIST subset with the fashion_mnist preset's teacher and student, against a private MLflow + Optuna
store. Teacher and cached logits are built once and shared; then the same study (same trial budget, same TPE
sampler seed, same warm start) runs with tune.pruner=none, median and hyperband, interleaved
(none, median, hyperband, none, ...) so load drift on a shared machine hits every arm. Prints each arm's
wall time, epochs trained, best validation accuracy, and the median wall-time ratio pruned / unpruned.
Hyperband assigns trials to brackets by a hash of the study name, so its epochs vary a little between repetitions.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
from private_store import private_store  # noqa: E402

from pipelines.config.schema import load_config  # noqa: E402
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student  # noqa: E402
from pipelines.tracking.runs import setup_experiment  # noqa: E402
from pipelines.tuning.study import open_study  # noqa: E402

PRUNERS = ("none", "median", "hyperband")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="fashion_mnist")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=8, help="epochs per trial")
    p.add_argument("--limit-train", type=int, default=10_000, help="stratified subset of the train split (0: all)")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared box)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    with private_store() as store:
        base = [
            f"runtime.device={a.device}",
            store,
            f"teacher.train.epochs={a.teacher_epochs}",
            f"tune.n_trials={a.trials}",
            f"tune.epochs={a.epochs}",
            "tune.n_workers=1",
            "tune.seed=0",
        ]
        if a.limit_train:
            base.append(f"data.limit_train={a.limit_train}")
        cfg = load_config(a.preset, base)
        experiment = setup_experiment(cfg)
        with mlflow.start_run(experiment_id=experiment) as parent:
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, parent.info.run_id)
            logits = compute_teacher_logits(cfg, data, teacher)
            print(
                f"{a.preset} preset: {data.sizes} images, teacher {teacher.arch} {a.teacher_epochs} epoch(s) (val acc "
                f"{teacher.val_acc:.3f}), student {cfg.student.arch}; "
                f"{a.trials} trials x {a.epochs} epochs, TPE seed 0; "
                f"device {a.device}, {torch.get_num_threads()} torch thread(s), os.cpu_count()={os.cpu_count()}"
            )
            times: dict[str, list[float]] = {k: [] for k in PRUNERS}
            epochs_trained: dict[str, list[int]] = {k: [] for k in PRUNERS}
            best: dict[str, list[float]] = {k: [] for k in PRUNERS}
            for rep in range(1, a.repeats + 1):
                for pruner in PRUNERS:
                    arm = load_config(
                        a.preset, [*base, f"tune.pruner={pruner}", f"tune.study_name=bench-{pruner}-{rep}"]
                    )
                    started = time.perf_counter()
                    result = tune_student(arm, data, teacher, logits, parent.info.run_id)
                    times[pruner].append(time.perf_counter() - started)
                    best[pruner].append(result.best_value)
                    trials = open_study(arm, result.study_name, a.epochs).trials
                    epochs = sum(len(t.intermediate_values) for t in trials)
                    epochs_trained[pruner].append(epochs)
                    print(
                        f"  rep {rep} {pruner:<9} {times[pruner][-1]:6.1f} s  {result.complete} complete, "
                        f"{result.pruned} pruned, "
                        f"{epochs}/{a.trials * a.epochs} epochs trained  best val acc {result.best_value:.4f}  "
                        f"load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    print(
        f"\n| pruner | epochs trained | wall time (median of {a.repeats}) | wall time vs none | best val acc |"
        f"  (load average {os.getloadavg()[0]:.1f})"
    )
    print("|---|---|---|---|---|")
    for pruner in PRUNERS:
        ratio = statistics.median(t / n for t, n in zip(times[pruner], times["none"]))
        print(
            f"| {pruner} | {statistics.median(epochs_trained[pruner]):g}/{a.trials * a.epochs} | "
            f"{statistics.median(times[pruner]):.1f} s | {ratio:.2f}x | {statistics.median(best[pruner]):.4f} |"
        )


if __name__ == "__main__":
    main()
