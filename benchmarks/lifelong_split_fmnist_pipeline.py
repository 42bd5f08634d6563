"""Split-Fashion-MNIST through the pipeline path: `kdflow stream simulate --preset split_fmnist` once per strategy,
side by side with the same protocol run on kdcore directly (benchmarks/lifelong_split_fmnist.py, its table).

    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_split_fmnist_pipeline.py [--tasks 5]

Prints the average accuracy over the 5 tasks' test parts after the last task, and forgetting, per strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = [("finetune", 200), ("lwf", 200), ("derpp", 200), ("derpp", 500), ("joint", 200)]
KDCORE = {"finetune": 19.94, "lwf": 31.39, "derpp-200": 76.33, "derpp-500": 80.38, "joint": 85.56}  # 3 seeds, mean


def simulate(strategy: str, buffer: int, tasks: int, folder: Path) -> dict:
    out = folder / "steps.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    env |= {"PREFECT_HOME": str(folder / "prefect"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "flows.cli", "stream", "simulate", "--preset", "split_fmnist", "--tasks", str(tasks)]
    cmd += ["--strategy", strategy, "--set", f"retrain.buffer_size={buffer}", "--output", str(out)]
    subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    print(f"{'strategy':<10} {'avg acc':>8} {'forgetting':>10} {'kdcore table':>12}")
    for strategy, buffer in RUNS:
        name = f"derpp-{buffer}" if strategy == "derpp" else strategy
        with tempfile.TemporaryDirectory() as tmp:
            last = simulate(strategy, buffer, args.tasks, Path(tmp))
        m = last["metrics"]
        print(f"{name:<10} {m['avg_acc']:>8.2%} {m['forgetting']:>10.2%} {KDCORE[name]:>11.2f}%", flush=True)


if __name__ == "__main__":
    main()
