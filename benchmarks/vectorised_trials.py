"""Trials per hour with tune.vectorise (K trials trained as one stacked group) against one trial at a time.

    OMP_NUM_THREADS=1 nice python benchmarks/vectorised_trials.py              # digits studies + FMNIST ceiling
    python benchmarks/vectorised_trials.py --part digits --seeds 0 1 2 --group 8
    python benchmarks/vectorised_trials.py --part fmnist --fmnist-train 6000

digits: the `digits` preset's tuning stage (its MLP student, 16 trials of 30 epochs, KD), run through the real
`tune_student` stage (Optuna SQLite study, MLflow SQLite runs), once one trial at a time (tune.vectorise=1) and
once K at a time, same study size, same epochs, same seeds, with pruning off and on (median). The arms alternate
(sequential, vectorised, sequential, ...) so load drift on a shared machine hits both. Prints trials per hour
over the whole stage (with its set-up, and its plots at the end) and from the first trial's start to the last
trial's end (as benchmarks/tune_workers.py counts), the ratios, and the best validation accuracy each study
found (quality: TPE asked K at a time with constant_liar against TPE asked one at a time), per seed. The
teacher trains 5 epochs instead of 30, the same for every arm: it only sets the soft targets both arms learn from.

fmnist: the `fashion_mnist` preset's MLP (784-64-10, input dropout 0.1, batch 128). First the ceiling: one
forward and backward of K members stacked as one layer against K separate models' (the layers alone: no loss,
no optimiser, no input dropout; alternated, median of 50); then `fit` itself, K members as one group against
K sequential fits, on a subsample of the training split (--fmnist-train images, 2 epochs): how much of the
ceiling the loop keeps.
One torch thread throughout (torch.set_num_threads(1)).

--device cuda (the standing GPU check's hook, benchmarks/gpu_check.py): the `fashion_mnist` MLP on Fashion-MNIST's
training images (data/fashion-mnist or /usr/share/datasets/fashion-mnist; random pixels of that shape without
them: only speed is measured) and a CIFAR-size ResNet-8 (resnet8, 3x32x32, random pixels), batch 128, KD from
random cached logits, each member with its own lr: K members stacked in `fit` against K sequential fits, arms
alternating; trials per hour and the ratio (goal >= 10x). --quick: tiny sizes, for the check's dry run on a CPU.
GPU figures: not measured yet (written without a GPU).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
import optuna  # noqa: E402
from private_store import private_store  # noqa: E402

from kdcore.data import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import KD  # noqa: E402
from kdcore.models import build_model  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.stacked import StackedModels  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402
from pipelines.config.schema import load_config  # noqa: E402
from pipelines.stages import compute_teacher_logits, prepare_data, train_teacher, tune_student  # noqa: E402
from pipelines.tracking.runs import setup_experiment  # noqa: E402
from pipelines.tuning.study import storage_url  # noqa: E402


def digits_studies(seeds: list[int], group: int, trials: int, epochs: int) -> None:
    with private_store() as store:
        base = ["runtime.device=cpu", "runtime.threads=1", store, "teacher.train.epochs=5", f"tune.n_trials={trials}"]
        base.append(f"tune.epochs={epochs}")
        cfg = load_config("digits", base)
        experiment = setup_experiment(cfg)
        rows = []
        with mlflow.start_run(experiment_id=experiment) as parent:
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, parent.info.run_id)
            logits = compute_teacher_logits(cfg, data, teacher)
            for seed in seeds:
                for pruner in ("none", "median"):
                    result = {}
                    for k in (1, group):  # interleaved: one pair per (seed, pruner)
                        overrides = [f"tune.vectorise={k}", f"tune.pruner={pruner}", f"tune.seed={seed}"]
                        overrides += [f"runtime.seed={seed}", f"tune.study_name=vec-{k}-{pruner}-{seed}"]
                        run_cfg = load_config("digits", [*base, *overrides])
                        tuned = tune_student(run_cfg, data, teacher, logits, parent.info.run_id)
                        done = tuned.complete + tuned.pruned
                        search = search_seconds(run_cfg, tuned.study_name)
                        result[k] = (done / tuned.seconds * 3600, tuned.best_value, done / search * 3600)
                        print(
                            f"seed {seed} pruner {pruner:6} K={k:2}: {done} trials ({tuned.pruned} pruned); stage "
                            f"{tuned.seconds:5.1f} s = {result[k][0]:5.0f} trials/h; trials {search:5.1f} s = "
                            f"{result[k][2]:5.0f} trials/h; best val/acc {tuned.best_value:.4f}; "
                            f"load average {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
                    rows.append(
                        (
                            seed,
                            pruner,
                            result[group][0] / result[1][0],
                            result[1][1],
                            result[group][1],
                            result[group][2] / result[1][2],
                        )
                    )
    print(f"\ndigits, K={group} vs one at a time ({trials} trials x {epochs} epochs):")
    for pruner in ("none", "median"):
        ratios = [r[2] for r in rows if r[1] == pruner]
        seq = [r[3] for r in rows if r[1] == pruner]
        vec = [r[4] for r in rows if r[1] == pruner]
        search = [r[5] for r in rows if r[1] == pruner]
        print(
            f"  pruning {pruner:6}: trials/h ratio, whole stage: median {statistics.median(ratios):.2f}x "
            f"(each: {', '.join(f'{r:.2f}' for r in ratios)}); first trial's start to last trial's end: median "
            f"{statistics.median(search):.2f}x (each: {', '.join(f'{r:.2f}' for r in search)}); "
            f"best val/acc sequential "
            f"{statistics.mean(seq):.4f} ({', '.join(f'{v:.4f}' for v in seq)}) vs vectorised "
            f"{statistics.mean(vec):.4f} ({', '.join(f'{v:.4f}' for v in vec)})"
        )


def search_seconds(cfg, study_name: str) -> float:
    """From the first trial's start to the last trial's end: the search without the stage's own set-up and plots."""
    trials = optuna.load_study(study_name=study_name, storage=storage_url(cfg)).trials
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def fmnist_mlp(input_shape, classes):
    return build_model("mlp", input_shape, classes, width=64, input_dropout=0.1)


def timed_pair(f, g, repeats: int) -> tuple[float, float]:
    """Median seconds of `f` and of `g`, called alternately `repeats` times each after two warm-up calls."""
    for _ in range(2):
        f()
        g()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((f, times[0]), (g, times[1])):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def fmnist(groups: list[int], n_train: int, epochs: int) -> None:
    bundle = load_dataset("fashion_mnist", "/usr/share/datasets/fashion-mnist", val=0.1, download=False)
    x = bundle.view.normalise(bundle.train.x[:128])
    print("fashion_mnist MLP (784-64-10), batch 128: forward + backward, stacked vs K separate models")
    ceilings = {}
    for k in groups:
        torch.manual_seed(0)
        # the layers' arithmetic only: no input dropout, whose mask K separate models draw K times
        models = [build_model("mlp", bundle.input_shape, bundle.num_classes, width=64) for _ in range(k)]
        stacked = StackedModels(models, x[:8])

        def separate(models=models):
            for m in models:
                m(x).sum().backward()

        def together(stacked=stacked):
            stacked.zero_grad()
            stacked(x).sum().backward()

        apart, stacked_time = timed_pair(separate, together, 50)
        ceilings[k] = apart / stacked_time
        print(f"  K={k:2}: ceiling {ceilings[k]:.2f}x (grouped layers: {stacked.grouped})", flush=True)

    train = Split(bundle.train.x[:n_train], bundle.train.y[:n_train])
    teacher = SoftTargets(logits=torch.randn(n_train, bundle.num_classes, generator=torch.Generator().manual_seed(0)))
    print(f"fit on {n_train} training images x {epochs} epochs (+ validation on {len(bundle.val)}), KD")
    for k in groups:
        torch.manual_seed(0)
        models = [fmnist_mlp(bundle.input_shape, bundle.num_classes) for _ in range(k)]
        settings = [TrainSettings(epochs=epochs, batch_size=128, lr=3e-3 * (1 + i / k)) for i in range(k)]
        seq, vec = [], []
        for _ in range(2):  # interleaved
            started = time.perf_counter()
            for m, s in zip(copy.deepcopy(models), settings):
                fit(m, train, bundle.val, s, KD(3.0, 0.6), soft_targets=teacher, view=bundle.view)
            seq.append(time.perf_counter() - started)
            started = time.perf_counter()
            fit(
                copy.deepcopy(models),
                train,
                bundle.val,
                settings,
                [KD(3.0, 0.6)] * k,
                soft_targets=teacher,
                view=bundle.view,
            )
            vec.append(time.perf_counter() - started)
        ratio = statistics.median(seq) / statistics.median(vec)
        print(
            f"  K={k:2}: fit {ratio:.2f}x = {ratio / ceilings[k]:.0%} of the {ceilings[k]:.2f}x ceiling "
            f"(load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )


def fashion_split(n: int) -> tuple[Split, tuple[int, int, int]]:
    try:
        root = next(r for r in ("data/fashion-mnist", "/usr/share/datasets/fashion-mnist") if Path(r).exists())
        bundle = load_dataset("fashion_mnist", root, download=False)
        return Split(bundle.view.normalise(bundle.train.x[:n]), bundle.train.y[:n]), bundle.input_shape
    except Exception:  # no files: random pixels of the same shape
        return random_split(n, (1, 28, 28)), (1, 28, 28)


def random_split(n: int, shape: tuple[int, int, int]) -> Split:
    """Random model-ready inputs and labels: for speed only."""
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))


def compare(name: str, arch: str, options: dict, train: Split, shape, groups, epochs: int, device: str) -> None:
    teacher = SoftTargets(logits=torch.randn(len(train), 10))
    val = Split(train.x[: len(train) // 5], train.y[: len(train) // 5])
    for k in groups:
        torch.manual_seed(0)
        models = [build_model(arch, shape, 10, **options) for _ in range(k)]
        settings = [
            TrainSettings(epochs=epochs, batch_size=128, lr=3e-3 * (1 + i / k), device=device) for i in range(k)
        ]
        seq, vec = [], []
        for _ in range(2):
            sync(device)
            started = time.perf_counter()
            for m, s in zip(copy.deepcopy(models), settings):
                fit(m, train, val, s, KD(3.0, 0.6), soft_targets=teacher)
            sync(device)
            seq.append(time.perf_counter() - started)
            started = time.perf_counter()
            fit(copy.deepcopy(models), train, val, settings, [KD(3.0, 0.6)] * k, soft_targets=teacher)
            sync(device)
            vec.append(time.perf_counter() - started)
        s, v = statistics.median(seq), statistics.median(vec)
        print(
            f"{name} K={k:2}: sequential {k / s * 3600:8.0f} trials/h, "
            f"stacked {k / v * 3600:8.0f} trials/h, {s / v:.2f}x"
        )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def on_device(device: str, quick: bool) -> None:
    """Stacked vs sequential `fit` on `device`: the fashion_mnist MLP and a CIFAR-size ResNet-8."""
    if device.startswith("cuda"):
        print(torch.cuda.get_device_name())
    n, groups, epochs = (256, [2], 1) if quick else (20000, [4, 8, 16, 32], 2)
    train, shape = fashion_split(n)
    compare("fashion_mnist mlp", "mlp", {"width": 64, "input_dropout": 0.1}, train, shape, groups, epochs, device)
    cifar = random_split(n, (3, 32, 32))
    compare("resnet8 3x32x32", "resnet8", {}, cifar, (3, 32, 32), groups, epochs, device)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["digits", "fmnist", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fmnist-groups", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--fmnist-train", type=int, default=6000)
    parser.add_argument("--device", help="compare stacked and sequential fits on this device (cuda: the GPU check)")
    parser.add_argument("--quick", action="store_true", help="with --device: tiny sizes (the check's dry run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.device:
        on_device(args.device, args.quick)
        return
    torch.set_num_threads(1)
    if args.part in ("digits", "all"):
        digits_studies(args.seeds, args.group, args.trials, args.epochs)
    if args.part in ("fmnist", "all"):
        fmnist(args.fmnist_groups, args.fmnist_train, 2)


if __name__ == "__main__":
    main()
