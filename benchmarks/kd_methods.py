"""All KD methods on Fashion-MNIST: CNN teacher -> small CNN student, same epochs, several seeds.

Prints mean ± std test accuracy of each method and its training time per epoch relative to
labels-only training. Every method uses its published default weights (config defaults), except
CRD's negatives per sample (--crd-k), which CPU memory bandwidth cannot afford at 16,384.

    nice python benchmarks/kd_methods.py                    # the README numbers (~20 min on a busy 2-core CPU box)
    python benchmarks/kd_methods.py --train-size 20000 --epochs 15 --device cuda
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data import Split  # noqa: E402
from kdcore.distill import DISTILLERS, LabelsOnly, build_distiller  # noqa: E402
from kdcore.evaluate import evaluate, predict_logits  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """The IDX format of (Fashion-)MNIST: magic (2 zero bytes, dtype 0x08, ndim), big-endian sizes, uint8 data."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(root: Path, train_size: int, test_size: int, seed: int, pool: int) -> tuple[Split, Split]:
    missing = [f for pair in FILES.values() for f in pair if not (root / f).is_file()]
    if missing:
        sys.exit(f"kd_methods: {root / missing[0]} not found; apt-get install dataset-fashion-mnist or pass --root")
    rng = np.random.default_rng(seed)
    out = []
    for split, size in (("train", train_size), ("test", test_size)):
        images, labels = (read_idx(root / f) for f in FILES[split])
        pick = np.sort(rng.permutation(len(labels))[:size])  # a seeded random subset, same for every method
        x = images[pick].astype(np.float32)[:, None] / 255.0
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // pool, pool, w // pool, pool).mean((3, 5))  # pool x pool average: cheaper on CPU
        out.append((x, labels[pick].astype(np.int64)))
    mean, std = out[0][0].mean(), out[0][0].std()  # train statistics only
    return tuple(Split(torch.from_numpy((x - mean) / std), torch.from_numpy(y)) for x, y in out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument("--train-size", type=int, default=3000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--pool", type=int, default=2, help="average-pool images by this factor (2: 14x14; 1: full 28x28)")
    p.add_argument("--epochs", type=int, default=4, help="student epochs, the same for every method")
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared box)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first..first+seeds-1 (to split seeds over processes)"
    )
    p.add_argument("--crd-k", type=int, default=1024)
    p.add_argument("--methods", default=",".join(DISTILLERS))
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    methods = ["labels-only", *[m for m in a.methods.split(",") if m]]
    torch.set_num_threads(a.threads)

    train, test = load_fashion_mnist(a.root, a.train_size, a.test_size, seed=0, pool=a.pool)
    val = Split(test.x[:256], test.y[:256])  # fit's per-epoch check only; the table uses the whole test subset
    shape = tuple(train.x.shape[1:])
    settings = dict(batch_size=64, lr=3e-3, weight_decay=1e-4, device=a.device)

    torch.manual_seed(0)
    teacher = build_model("cnn_medium", shape, 10, width=16)
    fit(teacher, train, val, TrainSettings(epochs=a.teacher_epochs, **settings), LabelsOnly())
    teacher.cpu().eval()
    teacher_logits = predict_logits(teacher, train.x)
    student_size = count_parameters(build_model("cnn_small", shape, 10))
    print(
        f"Fashion-MNIST subset: {len(train)} train / {len(test)} test images (seeded random subset), "
        f"{shape[1]}x{shape[2]} pixels, device {a.device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"teacher cnn_medium(16): {count_parameters(teacher):,} parameters, {a.teacher_epochs} epochs, "
        f"test acc {evaluate(teacher, test)['acc']:.2%}"
    )
    print(
        f"student cnn_small(16): {student_size:,} parameters, {a.epochs} epochs per method, "
        f"seeds {a.first_seed}..{a.first_seed + a.seeds - 1}, "
        f"AdamW lr 3e-3 one-cycle, batch 64; published default weights; CRD nce_k={a.crd_k}"
    )

    # CPU seconds, not wall time: on a shared box the wall clock measures the neighbours as much as the method.
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for method in methods:
            torch.manual_seed(seed)
            student = build_model("cnn_small", shape, 10)
            if method == "labels-only":
                distiller = LabelsOnly()
            else:
                distiller = build_distiller(method, **({"nce_k": a.crd_k} if method == "crd" else {}))
            started, cpu_started = time.perf_counter(), time.process_time()
            fit(
                student,
                train,
                val,
                TrainSettings(epochs=a.epochs, seed=seed, **settings),
                distiller,
                soft_targets=SoftTargets(logits=teacher_logits, teacher=teacher if distiller.needs_features else None),
            )
            cpu = (time.process_time() - cpu_started) / a.epochs
            wall = (time.perf_counter() - started) / a.epochs
            acc = evaluate(student, test)["acc"]
            results[method].append((acc, cpu, wall))
            print(
                f"  seed {seed} {method:<12} test acc {acc:.2%}  {cpu:.2f} CPU s/epoch  {wall:.2f} wall s/epoch",
                flush=True,
            )

    base_cpu = statistics.mean(r[1] for r in results["labels-only"])
    base_wall = statistics.mean(r[2] for r in results["labels-only"])
    print()
    print(
        f"| method | test accuracy (mean ± std, {a.seeds} seeds) | CPU time per epoch vs labels-only | "
        "wall time per epoch vs labels-only |"
    )
    print("|---|---|---|---|")
    for method, rows in results.items():
        accs = [100 * r[0] for r in rows]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        cpu, wall = statistics.mean(r[1] for r in rows) / base_cpu, statistics.mean(r[2] for r in rows) / base_wall
        print(f"| {method} | {statistics.mean(accs):.2f} ± {std:.2f} % | {cpu:.2f}x | {wall:.2f}x |")
    print(f"labels-only: {base_cpu:.2f} CPU s / {base_wall:.2f} wall s per epoch")


if __name__ == "__main__":
    main()
