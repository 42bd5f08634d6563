"""Our training loop (`kdcore.train.fit`) vs plain PyTorch loops:
training throughput on the same model, data and epochs.

    nice python benchmarks/loop_vs_plain.py                 # 3-6 minutes on a busy 2-core box
    python benchmarks/loop_vs_plain.py --device cuda --threads 4 --repeats 5

Three arms train the same freshly seeded model with the same AdamW, one-cycle schedule, batch size and
epochs, and score the validation split after every epoch (as `fit` does):
  ours        `fit(model, train, val, TrainSettings(...), LabelsOnly(), view=bundle.view)`: uint8 pixels,
              normalised once per fit (per batch when augmented or larger than 1 GiB as float)
  dataloader  what most PyTorch users write: pixels normalised once to float tensors in a TensorDataset,
              DataLoader(shuffle=True)
  index       the best plain loop: pixels normalised once to float tensors on the device, a random permutation
              sliced into batches
Arms run interleaved (ours, dataloader, index, ours, ...) so load drift on a shared machine hits all of them;
each prints samples/s per repetition and the median ratios ours/plain. Imports only kdcore (torch, numpy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import LabelsOnly  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.train import TrainSettings, fit, make_optimizer, make_schedule  # noqa: E402

# The fashion_mnist preset's student and teacher (pipelines/config/presets/fashion_mnist.yaml), copied: kdcore-only.
ROWS = {
    "student mlp(64)": dict(arch="mlp", width=64, batch_size=128, lr=3e-3, weight_decay=1e-4),
    "teacher cnn_medium(32)": dict(arch="cnn_medium", width=32, batch_size=128, lr=3e-3, weight_decay=5e-4),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def val_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(y), batch_size)
    )
    model.train()
    return correct / len(y)


def train_ours(model, train: Split, val: Split, view, settings: TrainSettings) -> float:
    return fit(model, train, val, settings, LabelsOnly(), view=view)[-1]["val/acc"]


def train_dataloader(model, x, y, val_x, val_y, settings: TrainSettings) -> float:
    """Float tensors on the host, shuffled batches from a DataLoader, each batch copied to the device."""
    device = torch.device(settings.device)
    model.to(device)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    optimizer = make_optimizer(model.parameters(), settings)
    schedule = make_schedule(optimizer, settings, len(loader))
    val_x, val_y = val_x.to(device), val_y.to(device)
    for _ in range(settings.epochs):
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        acc = val_accuracy(model, val_x, val_y, settings.batch_size * 4)
    return acc


def train_index(model, x, y, val_x, val_y, settings: TrainSettings) -> float:
    """Float tensors on the device, one permutation per epoch sliced into batches: no DataLoader at all."""
    device = torch.device(settings.device)
    model.to(device)
    x, y, val_x, val_y = x.to(device), y.to(device), val_x.to(device), val_y.to(device)
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = make_optimizer(model.parameters(), settings)
    schedule = make_schedule(optimizer, settings, -(-len(y) // settings.batch_size))
    for _ in range(settings.epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), settings.batch_size):
            index = order[start : start + settings.batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        acc = val_accuracy(model, val_x, val_y, settings.batch_size * 4)
    return acc


def run_row(label: str, spec: dict, bundle, train_size: int, val_size: int, epochs: int, a) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    pick = (
        torch.randperm(len(bundle.train), generator=gen)[:train_size].sort().values
    )  # same seeded subset for every arm
    train = Split(bundle.train.x[pick], bundle.train.y[pick])
    val = Split(bundle.val.x[:val_size], bundle.val.y[:val_size])
    # The plain loops normalise the stored pixels once, inside their timed run, as a user's script would.
    norm = bundle.view.normalise
    settings = TrainSettings(
        epochs=epochs,
        batch_size=spec["batch_size"],
        lr=spec["lr"],
        weight_decay=spec["weight_decay"],
        optimizer="adam",
        schedule="onecycle",
        seed=0,
        device=a.device,
        precision=a.precision,
        channels_last=a.channels_last,
    )
    device = torch.device(a.device)
    arms = {
        "ours": lambda m: train_ours(m, train, val, bundle.view, settings),
        "dataloader": lambda m: train_dataloader(m, norm(train.x), train.y, norm(val.x), val.y, settings),
        "index": lambda m: train_index(m, norm(train.x), train.y, norm(val.x), val.y, settings),
    }
    n_params = count_parameters(build_model(spec["arch"], bundle.input_shape, bundle.num_classes, width=spec["width"]))
    print(
        f"\n{label}: {n_params:,} parameters, {len(train)} train / {len(val)} val images, {epochs} epoch(s), "
        f"batch {settings.batch_size}, AdamW one-cycle, {a.repeats} interleaved repetitions"
    )
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(a.repeats + 1):  # repetition 0 warms up allocators and kernels and is not counted
        line = []
        for name, train_arm in arms.items():
            torch.manual_seed(0)
            model = build_model(spec["arch"], bundle.input_shape, bundle.num_classes, width=spec["width"])
            sync(device)
            started = time.perf_counter()
            acc = train_arm(model)
            sync(device)
            rate = len(train) * epochs / (time.perf_counter() - started)
            if rep:
                rates[name].append(rate)
            line.append(f"{name} {rate:,.0f}/s (val acc {acc:.3f})")
        print(
            f"  {'warm-up' if rep == 0 else f'rep {rep}'}: " + "  ".join(line) + f"  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    med = {name: statistics.median(r) for name, r in rates.items()}
    ratios = {
        plain: statistics.median(o / p for o, p in zip(rates["ours"], rates[plain]))
        for plain in ("dataloader", "index")
    }
    print(
        f"  median samples/s: ours {med['ours']:,.0f}, dataloader {med['dataloader']:,.0f}, index {med['index']:,.0f}"
    )
    print(
        f"  ours / dataloader {ratios['dataloader']:.2f}x, ours / index {ratios['index']:.2f}x "
        "(median of per-repetition ratios)"
    )
    return {"ours": med["ours"], **ratios}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared box)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mlp-epochs", type=int, default=3)
    p.add_argument("--mlp-train-size", type=int, default=54_000, help="54,000 = the preset's whole train split")
    p.add_argument("--cnn-epochs", type=int, default=1)
    p.add_argument("--cnn-train-size", type=int, default=5_000)
    p.add_argument("--val-size", type=int, default=2_000)
    p.add_argument(
        "--precision",
        default="fp32",
        help="ours only; fp32 compares the loops on equal arithmetic, auto adds bf16 autocast on a GPU",
    )
    p.add_argument("--channels-last", default="false", choices=["auto", "true", "false"], help="ours only")
    a = p.parse_args()
    a.channels_last = {"true": True, "false": False}.get(a.channels_last, a.channels_last)
    torch.set_num_threads(a.threads)
    bundle = load_dataset("fashion_mnist", a.root, val=0.1, seed=0, download=False)
    print(
        f"Fashion-MNIST (preset split: {len(bundle.train)} train / {len(bundle.val)} val), device {a.device}, "
        f"ours: precision {a.precision}, channels_last {a.channels_last}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), os.cpu_count()={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results = {
        "student mlp(64)": run_row(
            "student mlp(64)",
            ROWS["student mlp(64)"],
            bundle,
            min(a.mlp_train_size, len(bundle.train)),
            a.val_size,
            a.mlp_epochs,
            a,
        ),
        "teacher cnn_medium(32)": run_row(
            "teacher cnn_medium(32)",
            ROWS["teacher cnn_medium(32)"],
            bundle,
            min(a.cnn_train_size, len(bundle.train)),
            a.val_size,
            a.cnn_epochs,
            a,
        ),
    }
    print(
        "\n| model | ours (samples/s) | ours / DataLoader loop | ours / index-shuffle loop |  "
        f"({a.device}, load average {os.getloadavg()[0]:.1f})"
    )
    print("|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['ours']:,.0f} | {r['dataloader']:.2f}x | {r['index']:.2f}x |")


if __name__ == "__main__":
    main()
