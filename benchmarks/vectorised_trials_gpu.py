"""GPU check for tune.vectorise: K students trained as one stacked group against K sequential fits, on CUDA.

    python benchmarks/vectorised_trials_gpu.py [--groups 4 8 16 32] [--epochs 2]

Two students, both at the size the issue names: the `fashion_mnist` preset's MLP (784-64-10, batch 128) on
Fashion-MNIST's training images (/usr/share/datasets/fashion-mnist; random pixels of that shape when the files
are absent: only speed is measured), and a CIFAR-size ResNet-8 (resnet8, 3x32x32, batch 128) on random pixels.
KD from random cached teacher logits, each member with its own lr; bf16 autocast as the pipeline uses on CUDA.
Sequential and stacked arms alternate; prints trials per hour of each and the ratio (goal: >= 10x).
NOT RUN YET: written on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data import Split  # noqa: E402
from kdcore.distill import KD  # noqa: E402
from kdcore.models import build_model  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402


def fashion_split(n: int) -> tuple[Split, tuple[int, int, int]]:
    try:
        from kdcore.datasets import load_dataset

        bundle = load_dataset("fashion_mnist", "/usr/share/datasets/fashion-mnist", download=False)
        return Split(bundle.train.x[:n], bundle.train.y[:n]), bundle.input_shape
    except Exception:  # no files: random pixels of the same shape
        return random_split(n, (1, 28, 28)), (1, 28, 28)


def random_split(n: int, shape: tuple[int, int, int]) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(
        torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)
    )


def compare(name: str, arch: str, options: dict, train: Split, shape, groups, epochs: int) -> None:
    teacher = SoftTargets(logits=torch.randn(len(train), 10))
    val = Split(train.x[:1000], train.y[:1000])
    for k in groups:
        torch.manual_seed(0)
        models = [build_model(arch, shape, 10, **options) for _ in range(k)]
        settings = [
            TrainSettings(epochs=epochs, batch_size=128, lr=3e-3 * (1 + i / k), device="cuda") for i in range(k)
        ]
        seq, vec = [], []
        for _ in range(2):
            torch.cuda.synchronize()
            started = time.perf_counter()
            for m, s in zip(copy.deepcopy(models), settings):
                fit(m, train, val, s, KD(3.0, 0.6), soft_targets=teacher)
            torch.cuda.synchronize()
            seq.append(time.perf_counter() - started)
            started = time.perf_counter()
            fit(copy.deepcopy(models), train, val, settings, [KD(3.0, 0.6)] * k, soft_targets=teacher)
            torch.cuda.synchronize()
            vec.append(time.perf_counter() - started)
        s, v = statistics.median(seq), statistics.median(vec)
        print(
            f"{name} K={k:2}: sequential {k / s * 3600:8.0f} trials/h, "
            f"stacked {k / v * 3600:8.0f} trials/h, {s / v:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check measures the GPU; run benchmarks/vectorised_trials.py on a CPU")
    print(torch.cuda.get_device_name())
    train, shape = fashion_split(args.n)
    compare("fashion_mnist mlp", "mlp", {"width": 64, "input_dropout": 0.1}, train, shape, args.groups, args.epochs)
    compare("resnet8 3x32x32", "resnet8", {}, random_split(args.n, (3, 32, 32)), (3, 32, 32), args.groups, args.epochs)


if __name__ == "__main__":
    main()
