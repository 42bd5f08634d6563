"""Distil to a budget: a search with the student's size in the space vs today's fixed student, same trial count.

    OMP_NUM_THREADS=1 nice python benchmarks/budget_front.py                      # digits, ~5 min on a busy 2-core box
    OMP_NUM_THREADS=1 nice python benchmarks/budget_front.py --preset fashion_mnist --limit-train 10000 \
        --fronts --budgeted                                                      # the budgets only

The pipeline's own stages (no Prefect) against a private MLflow + Optuna store; teacher and cached logits built once.
Arm "fixed": today's search (accuracy only, pruned) of the preset's student. Arms "sized": tune.student_archs
[mlp, cnn_small], tune.space.width and depth, tune.objectives [accuracy, COST] for each COST of --fronts (default
params and latency_ms): the accuracy-versus-parameters and accuracy-versus-latency Pareto fronts. Then, for two
budgets (half and a tenth of the preset student's parameters), the parameters front's most accurate student within
the budget is retrained (distill_final) next to a labels-only student of the same architecture and size
(train_baseline, same epochs), both scored on the test split. With --budgeted, also a one-objective search per
budget (register.budget as Optuna's constraint, pruned, over-budget trials not trained), same trial count, and its
chosen student likewise. `--fronts` with no cost skips the fixed arm and the fronts.
Writes each front plot to benchmarks/figures/budget_front_<preset>_<cost>.png.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
from private_store import private_store  # noqa: E402

from kdcore.data import DataBundle  # noqa: E402
from kdcore.models import count_parameters  # noqa: E402
from pipelines.cache.keys import cache_dir  # noqa: E402
from pipelines.config.schema import COSTS, load_config  # noqa: E402
from pipelines.stages import (  # noqa: E402
    compute_teacher_logits,
    distill_final,
    evaluate_models,
    prepare_data,
    train_baseline,
    train_teacher,
    tune_student,
)
from pipelines.tracking.runs import setup_experiment  # noqa: E402
from pipelines.tuning.pareto_front import choose  # noqa: E402
from pipelines.tuning.student_cost import build_student, latency_ms, one_sample  # noqa: E402
from pipelines.tuning.study import STUDENT_KEYS, chosen_student, final_student, open_study  # noqa: E402

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="digits")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=15, help="epochs per trial")
    p.add_argument("--final-epochs", type=int, default=30, help="epochs of the retrained student and its baseline")
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--limit-train", type=int, default=0, help="stratified subset of the train split (0: all)")
    p.add_argument("--width", default="{low: 2, high: 64, log: true}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--fronts", nargs="*", default=["params", "latency_ms"], choices=COSTS, help="costs to map a front against"
    )
    p.add_argument(
        "--budgeted", action="store_true", help="also a one-objective search within each budget, same trial count"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with private_store() as store:
        base = [
            "runtime.device=cpu",
            store,
            f"teacher.train.epochs={a.teacher_epochs}",
            f"student.train.epochs={a.final_epochs}",
            f"tune.n_trials={a.trials}",
            f"tune.epochs={a.epochs}",
            "tune.seed=0",
            *([f"data.limit_train={a.limit_train}"] if a.limit_train else []),
        ]
        cfg = load_config(a.preset, base)
        with mlflow.start_run(experiment_id=setup_experiment(cfg)) as parent:
            pid = parent.info.run_id
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, pid)
            logits = compute_teacher_logits(cfg, data, teacher)
            bundle = DataBundle.load(data.path)
            preset_params = sum(p.numel() for p in build_student(cfg.student, bundle).parameters())
            print(
                f"{a.preset}: {data.sizes}, teacher {teacher.arch} val acc {teacher.val_acc:.4f} "
                f"({time.perf_counter() - started:.0f} s); preset student {cfg.student.arch} width "
                f"{cfg.student.width} = {preset_params:,} params; {a.trials} trials x {a.epochs} epochs each arm; "
                f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if a.fronts:
                fixed = tune_student(
                    load_config(a.preset, [*base, "tune.study_name=fixed"]), data, teacher, logits, pid
                )
                print(f"fixed student: best val acc {fixed.best_value:.4f} at {preset_params:,} params", flush=True)
            size_args = [
                "tune.student_archs=[mlp, cnn_small]",
                f"tune.space.width={a.width}",
                "tune.space.depth={low: 1, high: 2}",
            ]
            fronts = {}
            for cost in a.fronts:  # one two-objective search per cost, each its own study
                sized_args = [*base, *size_args, f"tune.study_name=sized-{cost}", f"tune.objectives=[accuracy, {cost}]"]
                sized_cfg = load_config(a.preset, sized_args)
                sized = tune_student(sized_cfg, data, teacher, logits, pid)
                fronts[cost] = (sized_args, sized, open_study(sized_cfg, f"sized-{cost}", a.epochs))
                print_front(a.preset, cost, sized_cfg, *fronts[cost][1:], bundle, pid)

            print(
                "\n| budget | search | chosen student (trial) | params | val acc | KD test acc | "
                "labels-only test acc | KD - labels |"
            )
            print("|---|---|---|---:|---:|---:|---:|---:|", flush=True)
            for share in (0.5, 0.1):
                budget = f"params<={int(preset_params * share)}"
                label = f"{budget} ({share:g} x preset)"
                if "params" in fronts:
                    front_pick(a.preset, *fronts["params"], budget, data, logits, pid, teacher, label)
                if a.budgeted:  # the same trial count spent by one objective constrained to the budget
                    one = [*base, *size_args, f"tune.study_name=budget-{budget}", f"register.budget={budget}"]
                    one_cfg = load_config(a.preset, one)
                    try:
                        tuned = tune_student(one_cfg, data, teacher, logits, pid)
                    except ValueError as e:
                        print(f"| {label} | budgeted | none: {e} | | | | | |")
                        continue
                    final_pair(one_cfg, data, logits, tuned, pid, teacher, f"{label} | budgeted")
    print(f"\ntotal {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f}")


def print_front(preset, cost, cfg, sized, study, bundle, pid) -> None:
    """The front's table (parameters and batch-1 latency of every point) and its plot under benchmarks/figures/."""
    print(f"\naccuracy-versus-{cost} front of the sized search (cheapest first):")
    print("| trial | student | params | latency ms (batch 1, CPU) | val acc |")
    print("|---|---|---:|---:|---:|")
    for row in sized.front:
        trial = study.trials[row["trial"]]
        spec = chosen_student(cfg, trial.params)
        model = build_student(spec, bundle)
        # the latency front shows the latency its search measured and optimised; the other fronts a fresh measure
        ms = trial.user_attrs.get("cost.latency_ms") or latency_ms(model, one_sample(bundle), "cpu")
        size = " ".join(f"{k}={v}" for k, v in spec.options().items() if k in ("width", "depth"))
        print(
            f"| {row['trial']} | {spec.arch} {size} | {count_parameters(model):,} | {ms:.3f} | {row['val/acc']:.4f} |"
        )
    front_png = cache_dir(cfg.runtime.store_dir, "runs") / f"front-{pid}" / "front.png"
    target = FIGURES / f"budget_front_{preset}_{cost}.png"
    shutil.copy(front_png, target)  # now, before the next search under this parent run overwrites it
    print(f"front plot: {target.relative_to(HERE.parent)} ({target.stat().st_size / 1000:.0f} KB)", flush=True)


def front_pick(preset, sized_args, sized, study, budget, data, logits, pid, teacher, label) -> None:
    """The parameters front's most accurate student within `budget`, retrained next to labels-only: one row."""
    run_cfg = load_config(preset, [*sized_args, f"register.budget={budget}"])
    try:
        choice = choose(run_cfg, study)
    except ValueError as e:  # BudgetUnreachable: the search tried nothing this small
        print(f"| {label} | front | none: {e} | | | | | |")
        return
    params = dict(choice.trial.params)
    tuned = sized.model_copy(
        update={
            "student": chosen_student(run_cfg, params).model_dump(),
            "method": params.pop("method", "kd"),
            "best_params": {k: v for k, v in params.items() if k not in STUDENT_KEYS},
            "best_value": choice.trial.values[0],
            "best_epoch": choice.trial.user_attrs.get("best_epoch"),
            "chosen_trial": choice.trial.number,
        }
    )
    final_pair(run_cfg, data, logits, tuned, pid, teacher, f"{label} | front")


def final_pair(cfg, data, logits, tuned, pid, teacher, label: str) -> None:
    """The chosen student distilled, and labels-only at the same size, both on the test split: one table row."""
    student = distill_final(cfg, data, logits, tuned, pid, teacher)
    baseline = train_baseline(cfg, data, pid, final_student(cfg, tuned))
    ev = evaluate_models(cfg, data, [student, baseline], pid)
    spec = final_student(cfg, tuned)
    size = " ".join(f"{k}={v}" for k, v in spec.options().items() if k in ("width", "depth"))
    kd, labels = ev.test_acc["student"], ev.test_acc["baseline"]
    print(
        f"| {label} | {spec.arch} {size} ({tuned.chosen_trial}) | {student.parameters:,} | {tuned.best_value:.4f} | "
        f"{kd:.4f} | {labels:.4f} | {100 * (kd - labels):+.2f} points |",
        flush=True,
    )


if __name__ == "__main__":
    main()
