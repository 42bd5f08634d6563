"""Does a second torch thread speed up training, by model size? The evidence for pipelines/training/threads.py's
SMALL_MODEL_PARAMETERS (below it, `runtime.threads=auto` takes one thread).

    OMP_NUM_THREADS=1 nice python benchmarks/threads_by_model_size.py      # ~3 minutes on a 2-core box

Each row trains one freshly seeded model with `kdcore.train.fit` (the pipeline's loop, batch as in the
presets) with 1 thread and with `--threads` threads, interleaved (1, N, 1, N, ...), and prints the median
time per epoch and the speed-up N threads / 1 thread. Imports only kdcore (torch, numpy, scikit-learn's digits).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import LabelsOnly  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402

# (dataset, arch, width, batch size): the digits and fashion_mnist presets' students and teachers, smallest first.
ROWS = [
    ("digits", "mlp", 32, 64),
    ("fashion_mnist", "mlp", 64, 128),
    ("digits", "cnn_medium", 16, 64),
    ("digits", "cnn_medium", 32, 64),
    ("fashion_mnist", "cnn_medium", 16, 128),
]


def seconds_per_epoch(bundle, train: Split, arch: str, width: int, batch: int, threads: int, epochs: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(arch, bundle.input_shape, bundle.num_classes, width=width)
    settings = TrainSettings(epochs=epochs, batch_size=batch, lr=3e-3, device="cpu", precision="fp32")
    started = time.perf_counter()
    fit(model, train, Split(bundle.val.x[:500], bundle.val.y[:500]), settings, LabelsOnly(), view=bundle.view)
    return (time.perf_counter() - started) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the many-thread arm")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", type=int, default=2_000, help="training images per row (digits has 1,167)")
    p.add_argument("--fashion-root", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    bundles = {
        "digits": load_dataset("digits", None, val=0.15, seed=0),
        "fashion_mnist": load_dataset("fashion_mnist", a.fashion_root, val=0.1, seed=0, download=False),
    }
    print(f"os.cpu_count()={os.cpu_count()}, 1 thread vs {a.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"| model | parameters | s/epoch, 1 thread | s/epoch, {a.threads} threads | speed-up | load |")
    print("|---|---|---|---|---|---|")
    for dataset, arch, width, batch in ROWS:
        bundle = bundles[dataset]
        n = min(a.images, len(bundle.train))
        train = Split(bundle.train.x[:n], bundle.train.y[:n])
        params = count_parameters(build_model(arch, bundle.input_shape, bundle.num_classes, width=width))
        epochs = 3 if arch == "mlp" else 1
        seconds_per_epoch(bundle, train, arch, width, batch, 1, 1)  # warm-up: allocators, kernels
        times: dict[int, list[float]] = {1: [], a.threads: []}
        for _ in range(a.repeats):
            for threads in times:
                times[threads].append(seconds_per_epoch(bundle, train, arch, width, batch, threads, epochs))
        one, many = statistics.median(times[1]), statistics.median(times[a.threads])
        print(
            f"| {dataset} {arch}({width}), {n} images | {params:,} | {one:.3f} | {many:.3f} | "
            f"{one / many:.2f}x | {os.getloadavg()[0]:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
