"""Fashion-MNIST table: teacher -> labels-only student -> tuned KD student, for two students over several seeds.

Runs the pipeline's own stages (no Prefect) against a private MLflow + Optuna store and prints a markdown
table of test accuracy (mean ± std over seeds) and parameter counts. The teacher is trained once (the
preset's runtime.seed) and shared by every seed; each seed changes the student's initialisation, batch
order and the TPE sampler.

    nice python benchmarks/fashion_mnist_table.py                       # the README table (3 seeds)
    python benchmarks/fashion_mnist_table.py --seeds 0 --set tune.n_trials=2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402

from pipelines.config.schema import load_config  # noqa: E402
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

# The two students of the table: extra overrides on top of the preset.
STUDENTS = {
    "mlp (64 hidden)": [],
    "cnn_small (width 8)": [
        "student.arch=cnn_small",
        "student.width=8",
        "student.input_dropout=",  # an MLP option
        "student.train.epochs=10",
        "tune.n_trials=4",
        "tune.epochs=5",
    ],
}


def run_student(base: list[str], extra: list[str], seed: int, teacher, store: str) -> dict:
    cfg = load_config(
        ARGS.preset, [*base, *extra, f"runtime.seed={seed}", f"tune.seed={seed}", f"runtime.store_dir={store}"]
    )
    data = prepare_data(cfg)
    experiment_id = setup_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"bench-{cfg.student.arch}-seed{seed}") as parent:
        pid = parent.info.run_id
        if teacher is None:
            teacher = train_teacher(cfg, data, pid)
        logits = compute_teacher_logits(cfg, data, teacher)
        baseline = train_baseline(cfg, data, pid)
        tuned = tune_student(cfg, data, teacher, logits, pid)
        student = distill_final(cfg, data, logits, tuned, pid, teacher)
        ev = evaluate_models(cfg, data, [teacher, baseline, student], pid)
    return {
        "teacher": teacher,
        "acc": ev.test_acc,
        "params": ev.parameters,
        "best": tuned.best_params,
        "arch": {"teacher": teacher.arch, "baseline": cfg.student.arch, "student": cfg.student.arch},
    }


def pct(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f} %"


def main() -> None:
    torch.set_num_threads(ARGS.threads)  # on a shared 2-core box, one thread per process is fastest
    logging.basicConfig(level=logging.INFO, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    started, teacher, rows = time.perf_counter(), None, {}
    for label, extra in STUDENTS.items():
        for seed in ARGS.seeds:
            r = run_student(ARGS.overrides, extra, seed, teacher, ARGS.store)
            teacher = r["teacher"]
            rows.setdefault(label, []).append(r)
            print(
                f"# {label} seed {seed}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in r["acc"].items())
                + f"  best {r['best']}",
                flush=True,
            )
    t = next(iter(rows.values()))[0]
    lines = [
        f"Fashion-MNIST test accuracy, {len(ARGS.seeds)} seeds ({', '.join(map(str, ARGS.seeds))}); "
        f"preset `{ARGS.preset}` {' '.join(ARGS.overrides)}",
        "",
        "| student | model | parameters | test accuracy |",
        "|---|---|---|---|",
        (
            f"| (teacher, trained once) | {t['arch']['teacher']} | {t['params']['teacher']:,} | "
            f"{100 * t['acc']['teacher']:.2f} % |"
        ),
    ]
    for label, runs in rows.items():
        for role, name in (("baseline", "labels only"), ("student", "KD, tuned")):
            lines.append(f"| {label} | {name} | {runs[0]['params'][role]:,} | {pct([r['acc'][role] for r in runs])} |")
    lines.append("")
    lines.append(f"wall time {(time.perf_counter() - started) / 60:.1f} min, torch threads {ARGS.threads}")
    print("\n".join(lines))
    if ARGS.output:
        raw = {label: [{k: r[k] for k in ("acc", "params", "best")} for r in runs] for label, runs in rows.items()}
        Path(ARGS.output).write_text(json.dumps({"table": lines, "runs": raw}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion_mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--store", default="/tmp/kdflow-fashion-mnist-bench", help="MLflow / Optuna / cache folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="also write the table and raw numbers as JSON")
    ARGS = parser.parse_args()
    main()
