"""Consistent-view teacher cache vs the online teacher under crop + flip augmentation, on Fashion-MNIST.

One CNN teacher is trained once; then the same student (same seed, same epochs, same KD loss) is
distilled (a) with the teacher run online on every augmented batch and (b) from K cached views per
sample (kdcore/teacher_views.py), the cache's build time counted in (b). Arms are interleaved
(a, b for even seeds, b, a for odd ones) so a busy neighbour slows both alike. Prints test accuracy
(mean ± std over seeds) and the wall- and CPU-time ratios, all measured in this one run.

    nice python benchmarks/consistent_views.py                      # ~4 min on a busy 2-core CPU box
    python benchmarks/consistent_views.py --train-size 20000 --epochs 15 --views 8 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.data import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import KD, LabelsOnly  # noqa: E402
from kdcore.evaluate import evaluate  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.teacher_views import TeacherViews  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402

ARMS = ("online teacher", "cached views")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train-size", type=int, default=3000, help="stratified training subsample")
    p.add_argument("--test-size", type=int, default=5000, help="first N images of the official test split")
    p.add_argument("--epochs", type=int, default=8, help="student epochs, the same for both arms")
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--views", type=int, default=4, help="K cached views per training sample")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared box)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    bundle = load_dataset("fashion_mnist", a.root, augment="crop_flip", limit_train=a.train_size, download=False)
    view, train = bundle.view, bundle.train
    val = Split(bundle.val.x[:512], bundle.val.y[:512])  # fit's per-epoch check only
    test = Split(bundle.test.x[: a.test_size], bundle.test.y[: a.test_size])
    shape = bundle.input_shape
    settings = dict(batch_size=64, lr=3e-3, weight_decay=1e-4, device=a.device)

    torch.manual_seed(0)
    teacher = build_model("cnn_medium", shape, 10, width=16)
    fit(teacher, train, val, TrainSettings(epochs=a.teacher_epochs, **settings), LabelsOnly(), view=view)
    teacher.eval()
    student_size = count_parameters(build_model("cnn_small", shape, 10, width=16))
    print(
        f"Fashion-MNIST: {len(train)} train (stratified subsample) / {len(test)} test images, 28x28, "
        f"augmentation random crop (padding {view.crop_padding}) + flip; device {a.device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"teacher cnn_medium(16): {count_parameters(teacher):,} parameters, {a.teacher_epochs} epochs, "
        f"test acc {evaluate(teacher, test, transform=view.normalise)['acc']:.2%}"
    )
    print(
        f"student cnn_small(16): {student_size:,} parameters, {a.epochs} epochs, KD T=4 alpha=0.9, "
        f"AdamW lr 3e-3 one-cycle, batch 64; cache K={a.views} views per sample; seeds 0..{a.seeds - 1}"
    )

    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for seed in range(a.seeds):
        for arm in ARMS if seed % 2 == 0 else ARMS[::-1]:
            torch.manual_seed(seed)
            student = build_model("cnn_small", shape, 10, width=16)
            started, cpu_started = time.perf_counter(), time.process_time()
            views, build = None, 0.0
            if arm == "cached views":  # built per run and counted: the honest cost of a single run
                views = TeacherViews.build(teacher.to(a.device), train.x, view, a.views, seed=seed)
                build = time.perf_counter() - started
            fit(
                student,
                train,
                val,
                TrainSettings(epochs=a.epochs, seed=seed, **settings),
                KD(),
                view=view,
                soft_targets=SoftTargets(views=views) if views else SoftTargets(teacher=teacher),
            )
            row = {
                "wall": time.perf_counter() - started,
                "cpu": time.process_time() - cpu_started,
                "build": build,
                "acc": evaluate(student, test, transform=view.normalise)["acc"],
            }
            results[arm].append(row)
            print(
                f"  seed {seed} {arm:<15} test acc {row['acc']:.2%}  {row['wall']:.1f} wall s "
                f"({row['build']:.1f} s building the cache)  {row['cpu']:.1f} CPU s",
                flush=True,
            )

    online = {k: statistics.mean(r[k] for r in results["online teacher"]) for k in ("wall", "cpu")}
    print()
    print(
        f"| soft targets | test accuracy (mean ± std, {a.seeds} seeds) | wall s per run | "
        "wall vs online | CPU vs online |"
    )
    print("|---|---|---|---|---|")
    for arm, rows in results.items():
        accs = [100 * r["acc"] for r in rows]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        wall, cpu = statistics.mean(r["wall"] for r in rows), statistics.mean(r["cpu"] for r in rows)
        print(
            f"| {arm} | {statistics.mean(accs):.2f} ± {std:.2f} % | {wall:.1f} | {wall / online['wall']:.2f}x | "
            f"{cpu / online['cpu']:.2f}x |"
        )
    cached = results["cached views"]
    build = statistics.mean(r["build"] for r in cached)
    replay = statistics.mean(r["wall"] - r["build"] for r in cached)
    print(
        f"cache build: {build:.1f} wall s for {a.views} views x {len(train)} samples; "
        f"a later run or trial sharing the cache trains in {replay:.1f} wall s = "
        f"{replay / online['wall']:.2f}x the online teacher's time"
    )


if __name__ == "__main__":
    main()
