"""Split-Fashion-MNIST, class-incremental: how much each lifelong strategy forgets.

The DER paper's Seq-MNIST protocol (Buzzega et al. 2020): 5 tasks of 2 classes, an MLP 784-100-100-10,
one epoch per task, batch 10, SGD lr 0.03; accuracy on each task's test images after every task.
Prints mean ± std over seeds of the final average accuracy and forgetting, as a markdown table.

    nice python benchmarks/lifelong_split_fmnist.py            # all strategies, 3 seeds
    python benchmarks/lifelong_split_fmnist.py --seeds 1 --strategies finetune
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data.bundle import Split  # noqa: E402
from kdcore.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist_arrays  # noqa: E402
from kdcore.distill.base import LabelsOnly  # noqa: E402
from kdcore.lifelong import accuracy_row, build_strategy, summarise  # noqa: E402
from kdcore.lifelong.derpp import BEST  # noqa: E402
from kdcore.models import build_model  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402

B500 = {"buffer_size": 500, **BEST[500]}  # the paper's DER++ at buffer 500: the base of every variant below
RB32 = {**B500, "label_weight": 1.0, "replay_batch_size": 32}  # the best validation row of the first search
XDER = {**RB32, "refresh_task_logits": True, "transplant_gamma": 0.85}  # X-DER's end-of-task update of stored logits
RUNS = {  # row name -> (strategy, options)
    "finetune": ("finetune", {}),
    "lwf": ("lwf", {"kd_weight": 1.0}),  # the paper's weight (the option's default is the pipeline's 0.2)
    "derpp (buffer 200)": ("derpp", {"buffer_size": 200, **BEST[200]}),
    "derpp (buffer 500)": ("derpp", B500),
    "joint": ("joint", {}),
    # DER++ with buffer 500 and the protocol unchanged: variants from its family, chosen with --validation
    "derpp-ace (buffer 500)": ("derpp", {**B500, "asymmetric_ce": True}),
    "derpp-ace-rb32 (buffer 500)": ("derpp", {**B500, "replay_batch_size": 32, "asymmetric_ce": True}),
    "derpp-rb32 (buffer 500)": ("derpp", {**B500, "replay_batch_size": 32}),
    "derpp-beta1-rb32 (buffer 500)": ("derpp", RB32),
    "derpp-ace-beta2 (buffer 500)": ("derpp", {**B500, "label_weight": 2.0, "asymmetric_ce": True}),
    "derpp-future (buffer 500)": ("derpp", {**B500, "mask_future_logits": True}),
    "derpp-ace-future (buffer 500)": ("derpp", {**B500, "asymmetric_ce": True, "mask_future_logits": True}),
    # X-DER's end-of-task update of the stored logits, on the best validation row above (replay batch 32, beta 1)
    "derpp-beta1-rb32-refresh (buffer 500)": ("derpp", {**RB32, "refresh_task_logits": True}),
    "derpp-beta1-rb32-xder (buffer 500)": ("derpp", XDER),
    "derpp-beta1-rb32-xder-future (buffer 500)": ("derpp", {**XDER, "mask_future_logits": True}),
    # chosen on the validation stream (3 seeds): X-DER's buffer policy and end-of-task logits, replay batch 32, beta 1
    "derpp-xder-fill (buffer 500)": ("derpp", {**XDER, "fill_at_task_end": True}),
}
DEFAULT = ["finetune", "lwf", "derpp (buffer 200)", "derpp (buffer 500)", "joint"]


def split_tasks(root: str, tasks: int = 5, validation: bool = False) -> list[tuple[Split, Split]]:
    """Each task's train and test images; with `validation`, its test part is the last 1/6 of its train images
    instead (the rest trains): variants are chosen on that stream, never on the test images."""
    parts = []
    for part in ("train", "test"):
        x, y = load_fashion_mnist_arrays(root, part)
        parts.append((torch.from_numpy(x).float().div(255).unsqueeze(1), torch.from_numpy(y)))
    (xtr, ytr), (xte, yte) = parts
    per = 10 // tasks
    out = []
    for t in range(tasks):
        classes = torch.arange(t * per, (t + 1) * per)
        tr, te = torch.isin(ytr, classes), torch.isin(yte, classes)
        if validation:
            x, y = xtr[tr], ytr[tr]
            cut = len(y) * 5 // 6
            out.append((Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])))
        else:
            out.append((Split(xtr[tr], ytr[tr]), Split(xte[te], yte[te])))
    return out


def protocol(seed: int, task: int, device: str = "cpu") -> TrainSettings:
    """One epoch, batch 10, plain SGD at a constant lr 0.03; each task's batch order from seed + task."""
    return TrainSettings(
        epochs=1,
        batch_size=10,
        lr=0.03,
        optimizer="sgd",
        momentum=0.0,
        schedule="constant",
        seed=seed + task,
        device=device,
    )


def run(strategy: str, options: dict, tasks, seed: int, device: str = "cpu") -> np.ndarray:
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28), 10, width=100, depth=2)
    method = build_strategy(strategy, seed=seed, **options)
    rows = []
    for task, (train, _) in enumerate(tasks):
        fit(model, train, None, protocol(seed, task, device), LabelsOnly(), strategy=method)
        rows.append(accuracy_row(model, [test for _, test in tasks]))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=DEFAULT_ROOT, help="folder with the four Fashion-MNIST IDX .gz files")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", nargs="*", default=DEFAULT, choices=list(RUNS))
    parser.add_argument("--validation", action="store_true", help="score on held-out train images, not the test ones")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="override a strategy option of every row run (a Python literal: 64, 0.5, True, None); for the search",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: write OPTION=VALUE, e.g. replay_batch_size=64")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parser.error(f"--set {item!r}: write OPTION=VALUE with a Python literal value, e.g. replay_batch_size=64")
    for name in args.strategies:  # a misspelt option fails now, not after the data has loaded
        try:
            build_strategy(RUNS[name][0], **{**RUNS[name][1], **overrides})
        except (ValueError, TypeError) as err:
            parser.error(str(err))
    torch.set_num_threads(1)
    tasks = split_tasks(args.root, validation=args.validation)
    lines = ["| strategy | average accuracy (%) | forgetting (%) | seconds per run |", "|---|---|---|---|"]
    for name in args.strategies:
        strategy, options = RUNS[name]
        options = {**options, **overrides}
        name = name + "".join(f", {k}={v}" for k, v in overrides.items())
        scores, seconds = [], []
        for seed in range(args.seeds):
            started = time.perf_counter()
            a = run(strategy, options, tasks, seed, args.device)
            seconds.append(time.perf_counter() - started)
            scores.append(summarise(a))
            final = " ".join(f"{100 * v:.1f}" for v in a[-1])  # each task's accuracy after the last task
            print(
                f"{name} seed {seed}: {scores[-1]}  final [{final}]  ({seconds[-1]:.0f} s)", file=sys.stderr, flush=True
            )
        acc = 100 * np.array([s["avg_acc"] for s in scores])
        fgt = 100 * np.array([s["forgetting"] for s in scores])
        lines.append(
            f"| {name} | {acc.mean():.2f} ± {acc.std():.2f} | {fgt.mean():.2f} ± {fgt.std():.2f} | "
            f"{np.mean(seconds):.0f} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
