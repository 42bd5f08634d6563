"""Time to a test accuracy: one model trained by kdcore's loop under several speed settings, side by side.

Benchmark 8 of the speed issue: the clock runs while `kdcore.train.fit` trains (its per-epoch
validation pass included); after each epoch it stops, the test split is scored once, and the run
ends at the first epoch whose test accuracy reaches --target (airbench's convention: evaluation is
not counted). Each variant is a comma-separated list of TrainSettings fields, e.g. precision=bf16;
every variant trains the same model from the same seed, and the ratios are against the first.
kdcore only (no MLflow / Prefect), so it runs on any machine with torch.

    python benchmarks/time_to_accuracy.py --device cuda                          # fashion_mnist teacher, 93.5 %
    python benchmarks/time_to_accuracy.py --dataset cifar10 --root data/cifar10 --arch resnet56 \\
        --target 0.94 --epochs 40 --optimizer sgd --lr 0.05 --batch-size 512 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import LabelsOnly  # noqa: E402
from kdcore.evaluate import evaluate  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402


class ReachedTarget(Exception):
    pass


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def parse_variant(text: str) -> dict:
    """'precision=bf16,channels_last=true' -> {'precision': 'bf16', 'channels_last': True}; 'default' -> {}."""
    if text in ("", "default"):
        return {}
    return {k.strip(): yaml.safe_load(v) for k, _, v in (item.partition("=") for item in text.split(","))}


def run(bundle, variant: dict, args) -> dict:
    torch.manual_seed(args.seed)
    model = build_model(
        args.arch,
        input_shape=bundle.input_shape,
        num_classes=bundle.num_classes,
        **({"width": args.width} if args.width else {}),
    )
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
        seed=args.seed,
        device=args.device,
        **variant,
    )
    test = bundle.test.to(args.device)
    trace, paused = [], 0.0
    sync(args.device)
    start = time.perf_counter()

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal paused
        sync(args.device)
        stop = time.perf_counter()
        acc = evaluate(model, test, 2048, bundle.view.normalise)["acc"]
        trace.append((epoch, stop - start - paused, acc))
        paused += time.perf_counter() - stop
        if acc >= args.target:
            raise ReachedTarget

    try:
        fit(model, bundle.train, bundle.val, settings, LabelsOnly(), view=bundle.view, on_epoch=on_epoch)
    except ReachedTarget:
        pass
    epoch, seconds, acc = trace[-1]
    per_epoch = statistics.median(b[1] - a[1] for a, b in zip([(0, 0.0, 0)] + trace, trace))
    return {
        "reached": acc >= args.target,
        "seconds": seconds,
        "epochs": epoch,
        "acc": acc,
        "epoch_s": per_epoch,
        "params": count_parameters(model),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--arch", default="cnn_medium")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--target", type=float, default=0.935)
    p.add_argument("--epochs", type=int, default=7, help="the schedule's length; the run stops early at the target")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--schedule", default="onecycle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--variants", nargs="+", default=["default"], help="e.g. default precision=bf16,channels_last=true")
    args = p.parse_args()

    bundle = load_dataset(args.dataset, args.root, val=0.1, seed=args.seed, download=False)
    known = {f.name for f in dataclasses.fields(TrainSettings)}
    variants = [parse_variant(v) for v in args.variants]
    for v in variants:
        if unknown := set(v) - known:
            p.error(f"unknown TrainSettings field(s) {sorted(unknown)}; known: {sorted(known)}")
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"{args.arch} on {args.dataset} ({len(bundle.train)} train images), target {100 * args.target:.1f} % test, "
        f"{args.epochs}-epoch schedule, batch {args.batch_size}; {device_name}; torch {torch.__version__}"
    )
    print("| variant | reached | epochs | seconds | s / epoch | test acc | ratio |")
    print("|---|---|---|---|---|---|---|")
    first = None
    for text, variant in zip(args.variants, variants):
        r = run(bundle, variant, args)
        first = first or r
        print(
            f"| {text} | {'yes' if r['reached'] else 'no'} | {r['epochs']} | {r['seconds']:.1f} | {r['epoch_s']:.2f} | "
            f"{100 * r['acc']:.2f} % | {r['seconds'] / first['seconds']:.2f} |",
            flush=True,
        )
    print(f"parameters: {first['params']:,}")


if __name__ == "__main__":
    main()
