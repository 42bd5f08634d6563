"""Is KD's gain over labels-only significant on Fashion-MNIST? A CPU-sized search, chosen on validation.

One CNN teacher is trained once on a stratified training subsample; then, for each seed (student initialisation
and batch order), the student learns from labels alone and from each candidate KD setting on the same subsample.
The setting is chosen on the validation mean; the test accuracies of the chosen setting and of labels-only are
compared pair by pair over the seeds (benchmarks/paired.py): mean difference and its 95 % t-interval.

    OMP_NUM_THREADS=1 nice python benchmarks/fashion_mnist_kd_gain.py          # ~10 min on a busy 2-core box
    python benchmarks/fashion_mnist_kd_gain.py --train-size 54000 --teacher-width 96 --device cuda   # full data
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired import paired_difference  # noqa: E402
from kdcore.data import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import DIST, KD, LabelsOnly  # noqa: E402
from kdcore.evaluate import evaluate, predict_logits  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402


def candidates(specs: list[str]) -> dict:
    """ "kd:4:0.9" -> KD(T=4, alpha=0.9); "dist:2:2" -> DIST(beta=2, gamma=2)."""
    made = {}
    for spec in specs:
        kind, first, second = spec.split(":")
        made[spec] = (KD, DIST)[kind == "dist"](float(first), float(second))
    return made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train-size", type=int, default=5000, help="stratified training subsample (of 51,000)")
    p.add_argument("--val-size", type=int, default=3000, help="first N held-out training images: the choice")
    p.add_argument("--teacher-width", type=int, default=16)
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--student", default="mlp")
    p.add_argument("--student-width", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20, help="student epochs, the same for every arm")
    p.add_argument("--kd", nargs="+", default=["kd:4:0.9", "kd:2:0.5", "dist:2:2"], help="kd:T:alpha, dist:beta:gamma")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--teacher-cache", type=Path, help="the teacher's weights: loaded when present, else saved there")
    p.add_argument("--output", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    bundle = load_dataset("fashion_mnist", a.root, augment="none", limit_train=a.train_size, download=False)
    view, train, test = bundle.view, bundle.train, bundle.test
    val = Split(bundle.val.x[: a.val_size], bundle.val.y[: a.val_size])
    shape = bundle.input_shape
    settings = dict(batch_size=64, lr=3e-3, weight_decay=1e-4, device=a.device)

    started = time.perf_counter()
    torch.manual_seed(0)
    teacher = build_model("cnn_medium", shape, 10, width=a.teacher_width)
    if a.teacher_cache and a.teacher_cache.exists():  # the same arguments, the same teacher: skip retraining it
        teacher.load_state_dict(torch.load(a.teacher_cache, weights_only=True))
    else:
        fit(teacher, train, val, TrainSettings(epochs=a.teacher_epochs, **settings), LabelsOnly(), view=view)
        if a.teacher_cache:
            torch.save(teacher.state_dict(), a.teacher_cache)
    teacher.eval()
    logits = predict_logits(teacher, train.x, transform=view.normalise)  # no augmentation: one view per image
    teacher_facts = {
        "parameters": count_parameters(teacher),
        "val_acc": evaluate(teacher, val, transform=view.normalise)["acc"],
        "test_acc": evaluate(teacher, test, transform=view.normalise)["acc"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    student_size = count_parameters(build_model(a.student, shape, 10, width=a.student_width))
    print(
        f"Fashion-MNIST: {len(train)} train (stratified subsample), {len(val)} val, {len(test)} test images; "
        f"teacher cnn_medium({a.teacher_width}) {teacher_facts['parameters']:,} parameters, {a.teacher_epochs} "
        f"epochs: val {teacher_facts['val_acc']:.2%}, test {teacher_facts['test_acc']:.2%} "
        f"({teacher_facts['seconds']} s); student {a.student}({a.student_width}) {student_size:,} parameters, "
        f"{a.epochs} epochs, AdamW lr 3e-3 one-cycle, batch 64",
        flush=True,
    )

    arms = {"labels only": LabelsOnly(), **candidates(a.kd)}
    results = {arm: {"val": [], "test": []} for arm in arms}
    for seed in range(a.seeds):
        for arm, distiller in arms.items():
            torch.manual_seed(seed)
            student = build_model(a.student, shape, 10, width=a.student_width)
            fit(
                student,
                train,
                val,
                TrainSettings(epochs=a.epochs, seed=seed, **settings),
                distiller,
                view=view,
                soft_targets=SoftTargets() if arm == "labels only" else SoftTargets(logits=logits),
            )
            for split_name, split in (("val", val), ("test", test)):
                results[arm][split_name].append(100 * evaluate(student, split, transform=view.normalise)["acc"])
            print(f"  seed {seed} {arm:<12} val {results[arm]['val'][-1]:.2f} test {results[arm]['test'][-1]:.2f}")

    print(f"\n| student | val accuracy ({a.seeds} seeds) | test accuracy | test: KD minus labels-only, paired |")
    print("|---|---|---|---|")
    base = results["labels only"]["test"]
    for arm, r in results.items():
        paired = "" if arm == "labels only" else paired_difference(r["test"], base).sentence()
        print(
            f"| {arm} | {statistics.fmean(r['val']):.2f} ± {statistics.stdev(r['val']):.2f} % | "
            f"{statistics.fmean(r['test']):.2f} ± {statistics.stdev(r['test']):.2f} % | {paired} |"
        )
    chosen = max((arm for arm in arms if arm != "labels only"), key=lambda arm: statistics.fmean(results[arm]["val"]))
    on_val = paired_difference(results[chosen]["val"], results["labels only"]["val"])
    on_test = paired_difference(results[chosen]["test"], base)
    print(f"\nchosen on validation: {chosen} (validation {on_val.sentence()})")
    print(f"its test gain over labels-only: {on_test.sentence()}")
    if a.output:
        a.output.write_text(
            json.dumps({"teacher": teacher_facts, "results": results, "chosen": chosen, "test": on_test.as_dict()})
        )


if __name__ == "__main__":
    main()
