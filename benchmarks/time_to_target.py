"""Time to target: the pipeline vs a tutorial-style KD pipeline, wall time until a student reaches the target
(issue 8, benchmark 7).

    nice python benchmarks/time_to_target.py                               # the fashion_mnist preset's budget
    nice python benchmarks/time_to_target.py --set teacher.train.epochs=1 --set student.train.epochs=5 \
        --set tune.n_trials=3 --set tune.epochs=2 --max-minutes 40   # the README's reduced budget (~35 min wall)

Both arms run in this process, one after the other, with the same torch threads and the same budget (the config
after --set: teacher epochs, student epochs, trials, epochs per trial, batch size, search ranges):

A, the pipeline: the stages as plain functions (as benchmarks/fashion_mnist_table.py calls them) in a fresh store:
  prepare_data, train_teacher, compute_teacher_logits, train_baseline, tune_student (validation split, median
  pruning, soft targets computed once), distill_final, evaluate_models (the test split, once), register_student.
  The clock runs from the start to the final KD student's test accuracy; the baseline is trained too and counted.
B, the naive pipeline written here the way most tutorials do it: a torchvision-style Dataset over the same
  Fashion-MNIST arrays with per-sample PIL -> ToTensor -> Normalize, DataLoader(batch_size=128, shuffle=True),
  the same teacher trained the same epochs, then random search over the same ranges with the same number of
  trials (the first one the preset's values, as the pipeline's warm start), every trial for its full epochs
  (no pruning) with the teacher's forward pass in every training step, then the best retrained (on the data
  tune.refit names, as the pipeline) and tested.
  Same model code, optimiser (AdamW) and one-cycle schedule as the pipeline: only the pipeline design differs.
B stops at a wall-clock cap (--cap-factor x A's time); the ratio is then a lower bound.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, random_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402

from kdcore.data.fashion_mnist import load_fashion_mnist_arrays  # noqa: E402
from kdcore.distill.kd import kd_loss  # noqa: E402
from kdcore.models import build_model  # noqa: E402
from pipelines.config.schema import PipelineConfig, load_config  # noqa: E402
from pipelines.stages import (  # noqa: E402
    compute_teacher_logits,
    distill_final,
    evaluate_models,
    prepare_data,
    register_student,
    train_baseline,
    train_teacher,
    tune_student,
)
from pipelines.tracking.runs import setup_experiment  # noqa: E402
from pipelines.training.refit import refits  # noqa: E402


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Capped(Exception):
    """Arm B ran past its wall-clock cap."""


# ---------------------------------------------------------------- arm A: the pipeline's stages


def pipeline_arm(cfg: PipelineConfig) -> dict:
    marks, started = {}, time.perf_counter()

    def mark(name: str) -> None:
        marks[name] = time.perf_counter() - started

    data = prepare_data(cfg)
    mark("data")
    experiment_id = setup_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name="time-to-target") as parent:
        pid = parent.info.run_id
        teacher = train_teacher(cfg, data, pid)
        mark("teacher")
        logits = compute_teacher_logits(cfg, data, teacher)
        mark("logits")
        baseline = train_baseline(cfg, data, pid)
        mark("baseline")
        tuned = tune_student(cfg, data, teacher, logits, pid)
        mark("tuning")
        student = distill_final(cfg, data, logits, tuned, pid, teacher)
        mark("final student")
        ev = evaluate_models(cfg, data, [teacher, baseline, student], pid)
        mark("test accuracy")
        register_student(cfg, data, student, baseline, tuned, ev, pid)
        mark("registered")
    return {
        "marks": marks,
        "acc": ev.test_acc["student"],
        "teacher_acc": ev.test_acc["teacher"],
        "baseline_acc": ev.test_acc["baseline"],
        "best": tuned.best_params,
        "trials": f"{tuned.complete} complete, {tuned.pruned} pruned",
    }


# ---------------------------------------------------------------- arm B: the tutorial pipeline


class FashionMNISTItems(Dataset):
    """What torchvision.datasets.FashionMNIST does per item: a PIL image, then the transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def naive_train(
    model, loader, val_loader, epochs, lr, weight_decay, deadline, teacher=None, temperature=4.0, alpha=0.0
):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * len(loader), pct_start=0.15
    )
    val_acc = 0.0
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            if time.perf_counter() > deadline:
                raise Capped()
            out = model(x)
            loss = F.cross_entropy(out, y)
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(x)  # the teacher's forward pass in every step of every trial
                loss = (1 - alpha) * loss + alpha * kd_loss(out, soft, temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        val_acc = accuracy(model, val_loader)
        logging.info("naive: epoch %d/%d  val/acc %.4f", epoch + 1, epochs, val_acc)
    return val_acc


@torch.no_grad()
def accuracy(model, loader) -> float:
    model.eval()
    right = total = 0
    for x, y in loader:
        right += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return right / total


def sample(rng: random.Random, r) -> float:
    if r.log:
        return math.exp(rng.uniform(math.log(r.low), math.log(r.high)))
    return rng.uniform(r.low, r.high)


def naive_arm(cfg: PipelineConfig, cap_seconds: float) -> dict:
    from torchvision import transforms

    marks, started = {}, time.perf_counter()
    deadline = started + cap_seconds

    def mark(name: str) -> None:
        marks[name] = time.perf_counter() - started

    tt, st = cfg.teacher.train, cfg.student.train
    try:
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
        images, labels = load_fashion_mnist_arrays(cfg.data.root, "train")
        test_images, test_labels = load_fashion_mnist_arrays(cfg.data.root, "test")
        full = FashionMNISTItems(images, labels, transform)
        if cfg.data.limit_train:  # quick looks only: a random subsample
            full = Subset(
                full,
                torch.randperm(len(full), generator=torch.Generator().manual_seed(cfg.data.seed))[
                    : cfg.data.limit_train
                ].tolist(),
            )
        n_val = round(len(full) * cfg.data.val_fraction)
        train_set, val_set = random_split(
            full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(cfg.data.seed)
        )
        train_loader = DataLoader(train_set, batch_size=128, shuffle=True)
        val_loader = DataLoader(val_set, batch_size=1000)
        test_loader = DataLoader(FashionMNISTItems(test_images, test_labels, transform), batch_size=1000)
        mark("data")

        torch.manual_seed(cfg.runtime.seed)
        teacher = build_model(cfg.teacher.arch, (1, 28, 28), 10, **cfg.teacher.options())
        naive_train(teacher, train_loader, val_loader, tt.epochs, tt.lr, tt.weight_decay, deadline)
        teacher.eval()
        mark("teacher")

        rng = random.Random(cfg.tune.seed)
        space = cfg.tune.space
        trials = [
            dict(temperature=cfg.distill.temperature, alpha=cfg.distill.alpha, lr=st.lr, weight_decay=st.weight_decay)
        ]
        while len(trials) < cfg.tune.n_trials:
            trials.append(
                {name: sample(rng, getattr(space, name)) for name in ("temperature", "alpha", "lr", "weight_decay")}
            )
        scores = []
        for i, p in enumerate(trials):
            torch.manual_seed(cfg.runtime.seed)
            student = build_model(cfg.student.arch, (1, 28, 28), 10, **cfg.student.options())
            scores.append(
                naive_train(
                    student,
                    train_loader,
                    val_loader,
                    cfg.tune.epochs or st.epochs,
                    p["lr"],
                    p["weight_decay"],
                    deadline,
                    teacher,
                    p["temperature"],
                    p["alpha"],
                )
            )
            logging.info("naive: trial %d val/acc %.4f %s", i, scores[-1], p)
        best = trials[max(range(len(trials)), key=scores.__getitem__)]
        mark("tuning")

        torch.manual_seed(cfg.runtime.seed)
        student = build_model(cfg.student.arch, (1, 28, 28), 10, **cfg.student.options())
        # the same data as the pipeline's final student: train, or train + val under tune.refit
        # (its val/acc log is then moot)
        final_loader = DataLoader(full, batch_size=128, shuffle=True) if refits(cfg) else train_loader
        naive_train(
            student,
            final_loader,
            val_loader,
            st.epochs,
            best["lr"],
            best["weight_decay"],
            deadline,
            teacher,
            best["temperature"],
            best["alpha"],
        )
        mark("final student")
        acc = accuracy(student, test_loader)
        mark("test accuracy")
        return {
            "marks": marks,
            "acc": acc,
            "teacher_acc": accuracy(teacher, test_loader),
            "best": best,
            "capped": False,
        }
    except Capped:
        return {"marks": marks, "acc": None, "capped": True, "seconds": time.perf_counter() - started}


def show(label: str, r: dict) -> str:
    marks = ", ".join(f"{k} {v:.0f} s" for k, v in r["marks"].items())
    return f"{label}: {marks}"


def project(marks: dict, cfg: PipelineConfig, full: PipelineConfig, phases: dict[str, str]) -> float:
    """The full budget's time to result: each phase's measured seconds scaled by its epochs (pruning ignored)."""
    epochs = {
        "teacher": (full.teacher.train.epochs, cfg.teacher.train.epochs),
        "student": (full.student.train.epochs, cfg.student.train.epochs),
        "tuning": (
            full.tune.n_trials * (full.tune.epochs or full.student.train.epochs),
            cfg.tune.n_trials * (cfg.tune.epochs or cfg.student.train.epochs),
        ),
    }
    total, before = 0.0, 0.0
    for name, at in marks.items():
        kind = phases.get(name)
        total += (at - before) * (epochs[kind][0] / epochs[kind][1] if kind else 1.0)
        before = at
        if name == "test accuracy":
            return total
    return total


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    budget = " ".join(ARGS.overrides) or "(the preset as is)"
    with tempfile.TemporaryDirectory(prefix="kdflow-time-to-target-") as store:
        cfg = load_config(ARGS.preset, [*ARGS.overrides, f"runtime.store_dir={store}", "runtime.device=cpu"])
        c = cfg
        print(
            f"# time to target {ARGS.target:.1%}: preset {ARGS.preset}, budget {budget}; teacher {c.teacher.arch} "
            f"{c.teacher.train.epochs} epochs, student {c.student.arch} {c.student.train.epochs} epochs, "
            f"{c.tune.n_trials} trials x {c.tune.epochs} epochs; torch threads {ARGS.threads}",
            flush=True,
        )
        up_a = uptime()
        a = pipeline_arm(cfg)
        a_time = a["marks"]["test accuracy"]
        print(show("A pipeline", a) + f"   [{up_a}]", flush=True)
        print(
            f"   A final KD student test acc {a['acc']:.4f} (teacher {a['teacher_acc']:.4f}, "
            f"baseline {a['baseline_acc']:.4f}), "
            f"trials {a['trials']}, best {a['best']}",
            flush=True,
        )
    cap = min(ARGS.cap_factor * a_time, ARGS.max_minutes * 60)
    up_b = uptime()
    b = naive_arm(cfg, cap)
    if b["capped"]:
        print(
            f"B naive: stopped at the cap {cap:.0f} s; reached: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in b["marks"].items())
            + f"   [{up_b}]  [{uptime()}]",
            flush=True,
        )
    else:
        print(show("B naive", b) + f"   [{up_b}]  [{uptime()}]", flush=True)
        print(
            f"   B final KD student test acc {b['acc']:.4f} (teacher {b['teacher_acc']:.4f}), best "
            + ", ".join(f"{k}={v:.4g}" for k, v in b["best"].items()),
            flush=True,
        )
    hit = {"A": a["acc"] >= ARGS.target, "B": (b["acc"] or 0) >= ARGS.target}
    print(
        f"\ntarget {ARGS.target:.1%} reached: A {'yes' if hit['A'] else 'no'} ({a['acc']:.2%}), "
        f"B {'capped' if b['capped'] else ('yes' if hit['B'] else 'no')}"
        + ("" if b["capped"] else f" ({b['acc']:.2%})")
    )
    if b["capped"]:
        print(f"time to result B/A >= {cap / a_time:.2f}  (B stopped at {cap:.0f} s, A {a_time:.0f} s)")
    else:
        b_time = b["marks"]["test accuracy"]
        print(f"time to result B/A = {b_time / a_time:.2f}  (B {b_time:.0f} s, A {a_time:.0f} s)")
        if not all(hit.values()):
            print("(a time-to-result ratio for the same budget; not both arms reached the target at this budget)")
        full = load_config(ARGS.preset)
        pa = project(
            a["marks"],
            cfg,
            full,
            {"teacher": "teacher", "baseline": "student", "tuning": "tuning", "final student": "student"},
        )
        pb = project(b["marks"], cfg, full, {"teacher": "teacher", "tuning": "tuning", "final student": "student"})
        print(
            "projected for the preset's own budget (phases scaled by epochs, no pruning): "
            f"B ~{pb:.0f} s / A ~{pa:.0f} s = ~{pb / pa:.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fashion_mnist")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--target", type=float, default=0.895, help="test accuracy the final student must reach")
    parser.add_argument("--cap-factor", type=float, default=4.0, help="stop arm B after this many times arm A's time")
    parser.add_argument(
        "--max-minutes", type=float, default=60.0, help="stop arm B after this many minutes at the latest"
    )
    parser.add_argument("--threads", type=int, default=1)
    ARGS = parser.parse_args()
    main()
