"""Split-Fashion-MNIST on kdcore directly with one difference of the pipeline path at a time: which of them costs
a strategy its points against the DER paper's protocol (benchmarks/lifelong_split_fmnist.py, its table).

    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_split_fmnist_differences.py lwf --seeds 1 --variants paper grow
    OMP_NUM_THREADS=1 nice python benchmarks/lifelong_split_fmnist_differences.py "derpp (buffer 200)" \\
        --variants paper norm less remember

Variants: paper (the protocol as is); grow (the head starts with task 1's 2 classes and widens per task, as a
pipeline run on data.classes with data.head_classes=kept); norm (inputs normalised by task 1's train mean and std,
the pipeline's default); less (90 % of task 1's images train, 80 % of each later task's, as after the pipeline's
validation share and a batch's held-out test part); remember (task 1 trained without the strategy, whose memory is
then seeded from task 1's data and the trained model, as a retraining does from a champion). Prints the final
average accuracy, mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifelong_split_fmnist import RUNS, protocol, split_tasks  # noqa: E402

from kdcore.data.bundle import Split  # noqa: E402
from kdcore.data.fashion_mnist import DEFAULT_ROOT  # noqa: E402
from kdcore.distill.base import LabelsOnly  # noqa: E402
from kdcore.lifelong import accuracy_row, build_strategy, grow_head, summarise  # noqa: E402
from kdcore.lifelong.remember import remember  # noqa: E402
from kdcore.models import build_model  # noqa: E402
from kdcore.train import fit  # noqa: E402

VARIANTS = ("paper", "grow", "norm", "less", "remember")


def changed_tasks(tasks, variant: str, seed: int):
    if variant == "norm":
        mean, std = tasks[0][0].x.mean(), tasks[0][0].x.std()
        return [(Split((tr.x - mean) / std, tr.y), Split((te.x - mean) / std, te.y)) for tr, te in tasks]
    if variant == "less":
        g, out = torch.Generator().manual_seed(seed), []
        for t, (tr, te) in enumerate(tasks):
            keep = torch.randperm(len(tr), generator=g)[: int(len(tr) * (0.9 if t == 0 else 0.8))].sort().values
            out.append((Split(tr.x[keep], tr.y[keep]), te))
        return out
    return tasks


def run(strategy: str, options: dict, tasks, seed: int, variant: str) -> dict:
    tasks = changed_tasks(tasks, variant, seed)
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28), 2 if variant == "grow" else 10, width=100, depth=2)
    method = build_strategy(strategy, seed=seed, **options)
    rows = []
    for task, (train, _) in enumerate(tasks):
        if variant == "grow":
            grow_head(model, 2 * (task + 1), seed=seed)
        if task == 0 and variant == "remember":
            fit(model, train, None, protocol(seed, task), LabelsOnly())
            method = remember(method, model, train)
        else:
            fit(model, train, None, protocol(seed, task), LabelsOnly(), strategy=method)
        rows.append(accuracy_row(model, [test for _, test in tasks]))
    return summarise(np.array(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=list(RUNS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--root", default=DEFAULT_ROOT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = split_tasks(args.root)
    strategy, options = RUNS[args.strategy]
    for variant in args.variants:
        started = time.perf_counter()
        accs = [100 * run(strategy, options, tasks, seed, variant)["avg_acc"] for seed in range(args.seeds)]
        print(
            f"{args.strategy} {variant}: avg acc {np.mean(accs):.2f} ± {np.std(accs):.2f} %  "
            f"({', '.join(f'{a:.2f}' for a in accs)}; {time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
