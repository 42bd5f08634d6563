"""A digits pipeline's champion learning new data: continual (DER++) vs refit, side by side in one run.

    OMP_NUM_THREADS=1 nice python benchmarks/retrain_digits.py      # a few minutes on a busy 2-core box

`kdflow run --preset digits` on classes 0-4 (data.classes), then one batch of the 5-9 digits the pipeline never saw
(sklearn's, 300 images; its own held-out test part), then from the same champion v1: `kdflow retrain --pipeline
digits` with retrain.policy=continual (DER++, teacher then student) and with retrain.policy=refit (the pipeline on
the original data plus the batch). Every retraining is registered; the tolerance is set to 1 so both versions are
compared without the gate choosing. Prints, per policy, the accuracy on the original test split before/after, on
the batch's test part, the average over both parts, forgetting, and wall time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.cli import main  # noqa: E402


def main_bench() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        run = ["run", "--preset", "digits", "--set", "data.classes=[0,1,2,3,4]", "--output", "run.json"]
        assert main(run + ["--set", "tune.n_trials=3", "--set", "teacher.train.epochs=5"]) == 0
        d = load_digits()
        keep = np.flatnonzero(d.target >= 5)[:300]
        np.savez("new.npz", inputs=np.round(d.images[keep] * 255 / 16).astype(np.uint8), labels=d.target[keep])
        assert main(["ingest", "new.npz", "--pipeline", "digits"]) == 0
        rows = []
        for policy in ("continual", "refit"):
            started = time.perf_counter()
            out = f"{policy}.json"
            cmd = ["retrain", "--pipeline", "digits", "--policy", policy, "--tolerance", "1", "--output", out]
            # both from champion v1: the refit's champion is v1 again because continual registers v2 ...
            assert main(cmd) == 0
            seconds = time.perf_counter() - started
            r = json.loads(Path(out).read_text())[0]
            rows.append((policy, r, seconds))
            if policy == "continual":  # put the alias back on v1 so the refit starts from the same champion
                import mlflow

                mlflow.MlflowClient().set_registered_model_alias("kdflow-digits-student", "champion", "1")
    print()
    print("| policy | original test before | after | new classes (batch test part) | average | forgetting | seconds |")
    print("|---|---|---|---|---|---|---|")
    for policy, r, seconds in rows:
        batch = r["learned_batches"][-1]
        before, after = r["champion_part_accuracies"]["original"], r["part_accuracies"]["original"]
        m = r["metrics"]
        print(
            f"| {policy} | {before:.4f} | {after:.4f} | {r['part_accuracies'][batch]:.4f} | "
            f"{m['avg_acc']:.4f} | {m['forgetting']:.4f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main_bench()
