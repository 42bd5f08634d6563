"""Tuning with cached teacher logits vs the teacher recomputed on every batch: wall time of the same search.

    nice python benchmarks/cached_teacher.py                         # 4-7 minutes on a busy 2-core box
    python benchmarks/cached_teacher.py --limit-train 0 --repeats 1   # the whole 54,000-image train split

The fashion_mnist preset's pair (teacher cnn_medium(32), student mlp(64)), run through the pipeline's own
stages (prepare_data, train_teacher, teacher_logits, tune_student; no Prefect) against a private MLflow +
Optuna store. The teacher is trained once with a small epoch budget: its accuracy does not change the timing.
Both arms then run the same study (same sampler seed, tune.pruner=none so both run every epoch):
  cached     the teacher-logits stage (its cache deleted first, so building it is counted) + tune_student
  recompute  tune_student with the soft targets from the teacher run on each training batch: the path the
             pipeline takes under augmentation, forced here on the same un-augmented data
Arms alternate (cached, recompute, cached, ...) so load drift on a shared machine hits both; prints each wall
time and the median ratio recompute / cached.
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

import pipelines.tuning.worker  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from pipelines.cache.checkpoint import load_model  # noqa: E402
from pipelines.config.schema import load_config  # noqa: E402
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student  # noqa: E402
from pipelines.teachers.teacher_targets import teacher_targets  # noqa: E402
from pipelines.tracking.runs import setup_experiment  # noqa: E402


def online_teacher(bundle, teacher_checkpoint, logits_path, need_model=False) -> SoftTargets:
    return SoftTargets(teacher=load_model(teacher_checkpoint))


def run_arm(arm: str, cfg, data, teacher, parent_id: str) -> tuple[float, float, float]:
    """(wall seconds, of which building the logits cache, best val acc) of one arm; the cached arm builds the
    cache from scratch."""
    started = time.perf_counter()
    if arm == "cached":
        logits_path = compute_teacher_logits(cfg, data, teacher)
        pipelines.tuning.worker.teacher_targets = teacher_targets
    else:
        logits_path = ""
        pipelines.tuning.worker.teacher_targets = online_teacher
    cache_seconds = time.perf_counter() - started
    try:
        result = tune_student(cfg, data, teacher, logits_path, parent_id)
    finally:
        pipelines.tuning.worker.teacher_targets = teacher_targets
    seconds = time.perf_counter() - started
    if arm == "cached":
        Path(logits_path).unlink()  # the next cached repetition pays for building it again
    return seconds, cache_seconds, result.best_value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    p.add_argument(
        "--limit-train", type=int, default=10_000, help="stratified subset of the train split (0: all 54,000)"
    )
    p.add_argument("--teacher-epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
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
            "tune.pruner=none",
            f"tune.n_trials={a.trials}",
            f"tune.epochs={a.epochs}",
            "tune.n_workers=1",
        ]
        if a.limit_train:
            base.append(f"data.limit_train={a.limit_train}")
        cfg = load_config("fashion_mnist", base)
        experiment = setup_experiment(cfg)
        with mlflow.start_run(experiment_id=experiment) as parent:
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, parent.info.run_id)
            print(
                f"fashion_mnist preset: {data.sizes} images, teacher {teacher.arch} "
                f"trained {a.teacher_epochs} epoch(s) in {teacher.seconds:.0f} s (val acc {teacher.val_acc:.3f}); "
                f"{a.trials} trials x {a.epochs} epochs, tune.pruner=none, device {a.device}, "
                f"{torch.get_num_threads()} torch thread(s), os.cpu_count()={os.cpu_count()}"
            )
            times: dict[str, list[float]] = {"cached": [], "recompute": []}
            for rep in range(1, a.repeats + 1):
                for arm in times:
                    arm_cfg = load_config("fashion_mnist", [*base, f"tune.study_name=bench-{arm}-{rep}"])
                    seconds, cache_seconds, best = run_arm(arm, arm_cfg, data, teacher, parent.info.run_id)
                    times[arm].append(seconds)
                    part = f" (cache build {cache_seconds:.1f} s)" if arm == "cached" else ""
                    print(
                        f"  rep {rep} {arm:<9} {seconds:6.1f} s{part}  best val acc {best:.4f}  "
                        f"load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    ratios = [r / c for c, r in zip(times["cached"], times["recompute"])]
    print(
        f"median wall: cached (cache build included) {statistics.median(times['cached']):.1f} s, "
        f"recompute {statistics.median(times['recompute']):.1f} s"
    )
    print(
        f"ratio recompute / cached: {statistics.median(ratios):.1f}x (per repetition: "
        f"{', '.join(f'{r:.1f}' for r in ratios)}; load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
