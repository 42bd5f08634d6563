"""Orchestration overhead: the whole `kdflow run` vs the same stages called as plain functions (issue 8, benchmark 6).

    nice python benchmarks/orchestration_overhead.py                        # the fashion_mnist preset, full budget
    nice python benchmarks/orchestration_overhead.py --set teacher.train.epochs=1 --set student.train.epochs=5 \
        --set tune.n_trials=3 --set tune.epochs=2      # the README's reduced budget, same for both arms (~10 min wall)

Arm A: `python -m flows.cli run --preset P --set ...` as a subprocess in a fresh folder with its own PREFECT_HOME
(as tests/conftest.py runs it): CLI, a temporary Prefect server, the flow with one task per stage, the artifacts.
Arm B: a fresh `python` subprocess calling the eight stages as plain functions in the flow's order, with the same
config, no Prefect imported. The stages log to MLflow internally, so B keeps MLflow on a throwaway SQLite store
in its own fresh folder (exactly what A writes); the time B spends inside MLflow calls is measured and printed,
so "B without MLflow" = B - that. Both arms start cold (fresh stores: nothing cached) with the same torch threads.
By default the two arms run at the same time, so that on a shared machine both see the same load; wall and CPU
time (each process tree's own, the Prefect server included) are printed. A third, tiny probe, run first,
measures Prefect alone: the temporary server's start-up and the cost of one no-op task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = (
    "prepare_data",
    "train_teacher",
    "teacher_logits",
    "train_baseline",
    "tune_student",
    "distill_final",
    "evaluate",
    "register",
)
# Epoch counts behind each stage, to project the full preset's stage time from a reduced-budget run.
FULL = {"teacher.train.epochs": 7, "student.train.epochs": 20, "tune.n_trials": 6, "tune.epochs": 8}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def clean_env(home: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def timed_subprocess(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every child it waited for: the Prefect server included)."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, safe while the other arm runs
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); see {log}")
    return seconds, usage.ru_utime + usage.ru_stime


def arm_kdflow(tmp: Path, args) -> dict:
    folder = tmp / "a"
    folder.mkdir(parents=True)
    summary = folder / "summary.json"
    cmd = [sys.executable, "-m", "flows.cli", "run", "--preset", args.preset, "--output", str(summary)]
    for assignment in args.overrides:
        cmd += ["--set", assignment]
    up = uptime()
    wall, cpu = timed_subprocess(cmd, folder, clean_env(folder, args.threads), tmp / "a.log")
    result = json.loads(summary.read_text())
    stages = {k: v for k, v in result["stage_seconds"].items() if k in STAGES}  # not the flow's own "total"
    return {
        "wall": wall,
        "cpu": cpu,
        "stages": stages,
        "uptime": up,
        "uptime_end": uptime(),
        "acc": result["models"]["student"]["test_acc"],
    }


def arm_plain(tmp: Path, args) -> dict:
    folder = tmp / "b"
    folder.mkdir(parents=True)
    result = folder / "plain.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain-stages", str(result), "--preset", args.preset]
    for assignment in args.overrides:
        cmd += ["--set", assignment]
    up = uptime()
    wall, cpu = timed_subprocess(cmd, folder, clean_env(folder, args.threads), tmp / "b.log")
    return {"wall": wall, "cpu": cpu, **json.loads(result.read_text()), "uptime": up, "uptime_end": uptime()}


PROBE = """
import time; t0 = time.perf_counter()
from prefect import flow, task
t_import = time.perf_counter() - t0
@task
def noop(i): return i
@flow
def empty(): return 0
@flow
def eight():
    for i in range(8): noop(i)
def clock(f):
    s = time.perf_counter(); f(); return time.perf_counter() - s
first = clock(empty)   # starts the temporary server, then one flow run
again = clock(empty)   # one flow run on the running server
tasks = clock(eight)   # one flow run with eight no-op tasks
print({"import": t_import, "first_flow": first, "flow": again, "per_task": (tasks - again) / 8})
"""


def prefect_probe(tmp: Path, args) -> dict:
    folder = tmp / "probe"
    folder.mkdir(parents=True)
    up = uptime()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=folder, env=clean_env(folder, args.threads), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"prefect probe failed: {out.stderr[-2000:]}")
    import ast

    last = [line for line in out.stdout.splitlines() if line.startswith("{")][-1]
    return {"wall": wall, **ast.literal_eval(last), "uptime": up}


def run_plain_stages(result_path: str, preset: str, overrides: list[str]) -> None:
    """Arm B, in its own process: the flow's stage sequence (flows/distill_pipeline.py::run_stages) without Prefect."""
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    logging.basicConfig(level=logging.INFO, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    mlflow_seconds = count_mlflow_time(mlflow, MlflowClient)
    from kdcore.device import resolve_device
    from pipelines import stages
    from pipelines.config.schema import load_config
    from pipelines.tracking.runs import loggable_params, setup_experiment
    from pipelines.tracking.summary import PipelineSummary

    cfg = load_config(preset, overrides)
    device = str(resolve_device(cfg.runtime.device))
    seconds: dict[str, float] = {}

    def timed(name, fn, *a):
        started = time.perf_counter()
        result = fn(*a)
        seconds[name] = round(time.perf_counter() - started, 3)
        return result

    data = timed("prepare_data", stages.prepare_data, cfg)
    experiment_id = setup_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-plain") as parent:
        pid = parent.info.run_id
        mlflow.log_params({**loggable_params(cfg), "model.device": device})
        mlflow.log_param("data.digest", data.digest)
        teacher = timed("train_teacher", stages.train_teacher, cfg, data, pid)
        logits = timed("teacher_logits", stages.compute_teacher_logits, cfg, data, teacher)
        baseline = timed("train_baseline", stages.train_baseline, cfg, data, pid)
        tuned = timed("tune_student", stages.tune_student, cfg, data, teacher, logits, pid)
        student = timed("distill_final", stages.distill_final, cfg, data, logits, tuned, pid, teacher)
        ev = timed("evaluate", stages.evaluate_models, cfg, data, [teacher, baseline, student], pid)
        reg = timed("register", stages.register_student, cfg, data, student, ev)
        summary = PipelineSummary.build(
            cfg, experiment_id, pid, data, teacher, baseline, student, tuned, ev, reg, seconds
        )
        mlflow.log_metrics({f"test/{role}_acc": acc for role, acc in ev.test_acc.items()})
        mlflow.log_dict(summary.model_dump(), "summary.json")
    Path(result_path).write_text(
        json.dumps({"stages": seconds, "mlflow_seconds": mlflow_seconds[0], "acc": ev.test_acc["student"]})
    )


def count_mlflow_time(mlflow, client_class) -> list[float]:
    """Wrap the MLflow entry points the stages call; time only the outermost call (no double counting)."""
    import functools

    import mlflow.pytorch

    total, depth = [0.0], [0]

    def wrap(fn):
        @functools.wraps(fn)
        def timed(*a, **kw):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    total[0] += time.perf_counter() - started

        return timed

    for name in (
        "start_run",
        "end_run",
        "log_params",
        "log_param",
        "log_metrics",
        "log_metric",
        "log_artifact",
        "log_dict",
        "set_tag",
        "set_tags",
        "get_run",
        "register_model",
        "set_tracking_uri",
        "get_experiment_by_name",
        "create_experiment",
    ):
        setattr(mlflow, name, wrap(getattr(mlflow, name)))
    mlflow.pytorch.log_model = wrap(mlflow.pytorch.log_model)
    mlflow.ActiveRun.__exit__ = wrap(mlflow.ActiveRun.__exit__)  # `with start_run()` ends the run here
    for name in ("log_batch", "set_model_version_tag", "set_registered_model_alias", "get_model_version_by_alias"):
        setattr(client_class, name, wrap(getattr(client_class, name)))
    return total


def project_full(stages_b: dict, overrides: list[str]) -> float:
    """The full preset's stage time, scaling each training stage by its epochs (pruning ignored: an upper bound)."""
    given = dict(FULL)
    for assignment in overrides:
        key, _, value = assignment.partition("=")
        if key in given:
            given[key] = int(value)
    scale = {
        "train_teacher": FULL["teacher.train.epochs"] / given["teacher.train.epochs"],
        "train_baseline": FULL["student.train.epochs"] / given["student.train.epochs"],
        "distill_final": FULL["student.train.epochs"] / given["student.train.epochs"],
        "tune_student": (FULL["tune.n_trials"] * FULL["tune.epochs"]) / (given["tune.n_trials"] * given["tune.epochs"]),
    }
    return sum(seconds * scale.get(name, 1.0) for name, seconds in stages_b.items())


def main(args) -> None:
    budget = " ".join(args.overrides) or "(the preset as is)"
    print(f"# orchestration overhead: preset {args.preset}, budget {budget}, torch threads {args.threads}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kdflow-overhead-") as name:
        tmp = Path(name)
        probe = prefect_probe(tmp, args)
        print(
            f"prefect probe: import {probe['import']:.1f} s, "
            f"temporary server start + first flow {probe['first_flow']:.1f} s, later flow run {probe['flow']:.2f} s, "
            f"per no-op task {probe['per_task']:.3f} s   [{probe['uptime']}]",
            flush=True,
        )
        arms = {"A": arm_kdflow, "B": arm_plain}
        if args.sequential:
            runs = [(arm, arms[arm](tmp / f"{i}", args)) for i, arm in enumerate(args.order)]
        else:  # both at once: on a shared, busy machine they then see the same load
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:
                futures = [(arm, pool.submit(arms[arm], tmp / f"{i}", args)) for i, arm in enumerate(args.order)]
                runs = [(arm, f.result()) for arm, f in futures]
        for arm, r in runs:
            stage_sum = sum(r["stages"].values())
            extra = f", of which inside MLflow {r['mlflow_seconds']:.1f} s" if "mlflow_seconds" in r else ""
            print(
                f"arm {arm}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, stages {stage_sum:.1f} s{extra}, "
                f"student test acc {r['acc']:.4f}   [start {r['uptime']}]  [end {r['uptime_end']}]",
                flush=True,
            )
            print("   stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()), flush=True)
        if args.keep:
            import shutil

            shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
    a = next(r for arm, r in runs if arm == "A")
    b = next(r for arm, r in runs if arm == "B")
    fixed = a["wall"] - sum(a["stages"].values()) - (b["wall"] - sum(b["stages"].values()))
    in_stages = sum(a["stages"].values()) - sum(b["stages"].values())
    print(
        f"\nratio A/B (kdflow run / plain stages, both with MLflow): wall {a['wall'] / b['wall']:.3f}  "
        f"({a['wall']:.1f} s / {b['wall']:.1f} s); CPU {a['cpu'] / b['cpu']:.3f}  ({a['cpu']:.1f} s / {b['cpu']:.1f} s)"
    )
    b_bare = b["wall"] - b["mlflow_seconds"]
    print(f"ratio A/(B without its MLflow time): {a['wall'] / b_bare:.3f}  ({a['wall']:.1f} s / {b_bare:.1f} s)")
    print(
        f"A's overhead {a['wall'] - b['wall']:.1f} s = outside the stages {fixed:.1f} s "
        "(CLI, Prefect import, server start-up, flow run, summary) "
        f"+ inside the stage timings {in_stages:.1f} s (task runs, artifacts, log shipping; "
        f"noise from the load included)"
    )
    full_b = project_full(b["stages"], args.overrides) + b["wall"] - sum(b["stages"].values())
    per_task = max(probe["per_task"], 0.0)
    by_tasks = fixed + per_task * len(STAGES)
    as_measured = fixed + max(in_stages, 0.0)
    print(
        f"projected full preset: arm B ~{full_b:.0f} s (B's stage seconds scaled by epochs and trials, no pruning); "
        f"ratio ~{(full_b + by_tasks) / full_b:.3f} with A's fixed overhead {fixed:.1f} s "
        f"+ {len(STAGES)} tasks x {per_task:.2f} s, "
        f"~{(full_b + as_measured) / full_b:.3f} with the fixed overhead + the in-stage overhead measured here"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion_mnist")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in both arms (OMP_NUM_THREADS)")
    parser.add_argument("--order", nargs="+", default=["B", "A"], choices=["A", "B"], help="arms in the order started")
    parser.add_argument("--sequential", action="store_true", help="one arm after the other (default: both at once)")
    parser.add_argument("--keep", help="copy the arms' folders and logs here")
    parser.add_argument("--plain-stages", metavar="RESULT_JSON", help=argparse.SUPPRESS)  # arm B's own process
    ARGS = parser.parse_args()
    if ARGS.plain_stages:
        sys.path.insert(0, str(ROOT))
        run_plain_stages(ARGS.plain_stages, ARGS.preset, ARGS.overrides)
    else:
        main(ARGS)
