"""Split-Fashion-MNIST through the pipeline path: `kdflow stream simulate --preset split_fmnist` once per strategy,
side by side with the same protocol run on kdcore directly (benchmarks/lifelong_split_fmnist.py, its table).

    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_split_fmnist_pipeline.py [--tasks 5] [--seeds 0 1 2]

Prints the average accuracy over the 5 tasks' test parts after the last task and forgetting (mean ± std over the
seeds), and seconds per run (the whole `kdflow stream simulate` command), per strategy.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The kdcore table's options: LwF's kd_weight 1 and T 2; DER++ with the paper's values for each buffer size
# (kdcore.lifelong.derpp.BEST; the preset's are buffer 200's)
RUNS = {
    "finetune": ("finetune", []),
    "lwf": ("lwf", ["retrain.lwf.kd_weight=1.0", "retrain.lwf.temperature=2.0"]),
    "derpp-200": (
        "derpp",
        [
            f"retrain.derpp.{k}={v}"
            for k, v in dict(buffer_size=200, logit_weight=0.2, label_weight=1.0, replay_batch_size=128).items()
        ],
    ),
    "derpp-500": (
        "derpp",
        [
            f"retrain.derpp.{k}={v}"
            for k, v in dict(buffer_size=500, logit_weight=1.0, label_weight=0.5, replay_batch_size=10).items()
        ],
    ),
    "joint": ("joint", []),
}
KDCORE = {"finetune": 19.94, "lwf": 31.39, "derpp-200": 76.33, "derpp-500": 80.38, "joint": 85.56}  # 3 seeds, mean


def simulate(strategy: str, overrides: list[str], tasks: int, folder: Path) -> dict:
    out = folder / "steps.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    env |= {"PREFECT_HOME": str(folder / "prefect"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "flows.cli", "stream", "simulate", "--preset", "split_fmnist", "--tasks", str(tasks)]
    cmd += ["--strategy", strategy, *(a for o in overrides for a in ("--set", o)), "--output", str(out)]
    subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS), help="these rows only")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="runtime.seed of each run (mean ± std)")
    args = parser.parse_args()
    print(f"{'strategy':<10} {'avg acc (%)':>13} {'forgetting (%)':>14} {'kdcore table':>12} {'s per run':>9}")
    for name in args.only:
        strategy, overrides = RUNS[name]
        accs, forgets, seconds = [], [], []
        for seed in args.seeds:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                last = simulate(strategy, [*overrides, f"runtime.seed={seed}"], args.tasks, Path(tmp))
            seconds.append(time.perf_counter() - started)
            accs.append(100 * last["metrics"]["avg_acc"])
            forgets.append(100 * last["metrics"]["forgetting"])
            print(f"{name} seed {seed}: avg acc {accs[-1]:.2f} %, forgetting {forgets[-1]:.2f} %", file=sys.stderr)
        acc, forget = f"{np.mean(accs):.2f} ± {np.std(accs):.2f}", f"{np.mean(forgets):.2f} ± {np.std(forgets):.2f}"
        print(f"{name:<10} {acc:>13} {forget:>14} {KDCORE[name]:>11.2f}% {np.mean(seconds):>9.0f}", flush=True)


if __name__ == "__main__":
    main()
