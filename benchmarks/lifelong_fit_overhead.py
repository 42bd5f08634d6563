"""Wall time of one DER++ run on Split-Fashion-MNIST through `fit`, against a plain PyTorch loop doing the same.

Same protocol as benchmarks/lifelong_split_fmnist.py (MLP 784-100-100-10, one epoch per task, batch 10, SGD
lr 0.03, DER++ with buffer 500 and the paper's weights). The plain loop is what one writes by hand (mammoth's
shape): tensors in memory, a reservoir buffer of preallocated tensors, the two replay draws, no hooks. Runs
alternate (plain, fit, plain, fit, ...) so both see the same load; prints fit's throughput over the plain loop's.

    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_fit_overhead.py --rounds 2
    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_fit_overhead.py --rounds 6 --tasks 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lifelong_split_fmnist import run, split_tasks  # noqa: E402
from kdcore.data.fashion_mnist import DEFAULT_ROOT  # noqa: E402
from kdcore.lifelong.derpp import BEST  # noqa: E402
from kdcore.models import build_model  # noqa: E402

OPTIONS = {"buffer_size": 500, **BEST[500]}


def plain_derpp(tasks, seed: int) -> None:
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28), 10, width=100, depth=2)
    size, alpha, beta, rb = 500, OPTIONS["logit_weight"], OPTIONS["label_weight"], OPTIONS["replay_batch_size"]
    bx, by, bl = torch.zeros(size, 1, 28, 28), torch.zeros(size, dtype=torch.long), torch.zeros(size, 10)
    filled, seen, gen = 0, 0, torch.Generator().manual_seed(seed)
    for task, (train, _) in enumerate(tasks):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.03)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + task))
        model.train()
        for start in range(0, len(train), 10):
            i = order[start : start + 10]
            x, y = train.x[i], train.y[i]
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if filled:
                a = torch.randperm(filled, generator=gen)[:rb]
                loss = loss + alpha * F.mse_loss(model(bx[a]), bl[a])
                b = torch.randperm(filled, generator=gen)[:rb]
                loss = loss + beta * F.cross_entropy(model(bx[b]), by[b])
            loss.backward()
            optimizer.step()
            for k in range(len(y)):  # reservoir sampling
                slot = filled if filled < size else int(torch.randint(0, seen + 1, (1,), generator=gen))
                if slot < size:
                    bx[slot], by[slot], bl[slot] = x[k], y[k], logits[k].detach()
                    filled = min(filled + 1, size)
                seen += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5, help="time the first N tasks only (shorter rounds)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = split_tasks(args.root)[: args.tasks]
    times = {"plain": [], "fit": []}
    for r in range(args.rounds):
        for name in ("plain", "fit"):
            started = time.perf_counter()
            plain_derpp(tasks, r) if name == "plain" else run("derpp", OPTIONS, tasks, r)
            times[name].append(time.perf_counter() - started)
            print(f"round {r} {name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    ratios = [p / f for p, f in zip(times["plain"], times["fit"])]
    print(f"fit throughput / plain loop's, per round: {', '.join(f'{v:.2f}x' for v in ratios)}")
    plain, fit = sum(times["plain"]), sum(times["fit"])
    print(f"in all: plain {plain:.0f} s, fit {fit:.0f} s, fit's throughput {plain / fit:.2f}x the plain loop's")


if __name__ == "__main__":
    main()
