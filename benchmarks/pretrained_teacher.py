"""Pretrained vs from-scratch teacher: the same student distilled from each, with 100 and 1,000 images per class.

Fashion-MNIST written as a 32x32 RGB image folder (N training images per class, 100 test images per class
from the official test part), run through the `imagefolder_pretrained` preset's stages (no Prefect) against
a private MLflow + Optuna store, per seed:
  from scratch : torchvision resnet18 trained on the folder alone, at the data's 32 px (lr 0.05, 30 epochs);
  pretrained   : resnet18 from --pretrained (default torchvision's IMAGENET1K_V1), fine-tuned as the preset says
                 (224 px through the input adapter, head first, backbone at a tenth of the learning rate).
Each is distilled into the preset's student (resnet20 at 32 px, tuned KD); the labels-only student is printed
beside them. The table gives test accuracy (mean ± std over seeds) and the student's gain from the pretrained
teacher over the from-scratch one, in points, measured side by side in one run.

Texts (--text DATASET=ROOT, repeatable: the benchmarks' corpora, e.g. imdb=data/imdb, or text_folder=/tmp/man-sections
as benchmarks/text_distill.py --build-from-man writes it): fasttext distilled from the preset's BiLSTM trained from
scratch vs from a Hugging Face classifier fine-tuned on the raw texts (--hf-model, default distilbert-base-uncased:
teacher.arch=hf, 3 epochs at lr 2e-5, batch 16), the same seeds, the same table.

NEEDS NETWORK ACCESS for the ImageNet weights (or resnet18-f37072fd.pth already in TORCH_HOME/hub/checkpoints),
and a GPU for the full run's size. No figures were measured on the machines this was written on (no network).

    nice python benchmarks/pretrained_teacher.py                      # 100 and 1,000 per class, seeds 0 1 2
    python benchmarks/pretrained_teacher.py --dry-run --pretrained /tmp/random-resnet18.pth
        # the mechanics at tiny sizes (3 classes, 6 images each, 1 epoch, 1 seed); its numbers mean nothing
    nice python benchmarks/pretrained_teacher.py --no-images --text imdb=data/imdb --text text_folder=/tmp/man-sections
        # the text corpora alone (the Hugging Face model in HF_HOME, downloaded when absent)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
from PIL import Image  # noqa: E402

from kdcore.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist_arrays  # noqa: E402
from pipelines.config.schema import load_config  # noqa: E402
from pipelines.stages import (  # noqa: E402
    compute_teacher_logits,
    distill_final,
    evaluate_models,
    prepare_data,
    train_baseline,
    train_teacher,
    tune_student,
)
from pipelines.tracking.runs import setup_experiment  # noqa: E402

CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]

# The two teachers: overrides on top of the preset (the pretrained one adds teacher.pretrained).
SCRATCH = [
    "teacher.pretrained=",
    "teacher.train.lr=0.05",
    "teacher.train.epochs=30",
    "teacher.train.backbone_lr_factor=1.0",
    "teacher.train.freeze_backbone_epochs=0",
]
DRY = [  # tiny budgets: every stage runs once, quickly
    "teacher.train.epochs=1",
    "student.train.epochs=1",
    "student.arch=resnet8",
    "tune.n_trials=0",
    "teacher.train.freeze_backbone_epochs=0",
    "teacher.train.batch_size=8",
    "student.train.batch_size=8",
    "distill.teacher_views=2",
    "data.val_fraction=0.34",
]


# The Hugging Face teacher on texts: the usual fine-tuning recipe (Devlin et al. 2019: 2-4 epochs, lr 2e-5 to 5e-5).
HF_TEACHER = [
    "teacher.arch=hf",
    "teacher.width=null",
    "teacher.train.lr=2e-5",
    "teacher.train.epochs=3",
    "teacher.train.batch_size=16",
    "teacher.train.weight_decay=0.01",
]
TEXT_PRESET = {"imdb": "imdb"}  # the others: text_csv's settings with their own data.dataset
TEXT_DRY = ["teacher.train.epochs=1", "student.train.epochs=1", "tune.n_trials=0"]


def write_folder(out: Path, per_class: int, test_per_class: int, classes: int, seed: int = 0) -> Path:
    """out/train/<class>/*.png (N per class, seeded) and out/test/<class>/*.png, 32x32 RGB."""
    if (out / "done").exists():
        return out
    rng = np.random.default_rng(seed)
    for part, count in (("train", per_class), ("test", test_per_class)):
        images, labels = load_fashion_mnist_arrays(ARGS.fmnist_root, part)
        for c in range(classes):
            folder = out / part / CLASSES[c]
            folder.mkdir(parents=True, exist_ok=True)
            for i, k in enumerate(rng.choice(np.flatnonzero(labels == c), count, replace=False)):
                Image.fromarray(images[k]).convert("RGB").resize((32, 32), Image.BILINEAR).save(folder / f"{i}.png")
    (out / "done").touch()
    return out


def run_pair(overrides: list[str], seed: int, store: str, preset: str = "imagefolder_pretrained") -> dict:
    cfg = load_config(
        preset,
        [*overrides, f"runtime.seed={seed}", f"tune.seed={seed}", f"runtime.store_dir={store}"],
    )
    data = prepare_data(cfg)
    with mlflow.start_run(experiment_id=setup_experiment(cfg), run_name=f"bench-seed{seed}") as parent:
        pid = parent.info.run_id
        teacher = train_teacher(cfg, data, pid)
        logits = compute_teacher_logits(cfg, data, teacher)
        baseline = train_baseline(cfg, data, pid)
        tuned = tune_student(cfg, data, teacher, logits, pid)
        student = distill_final(cfg, data, logits, tuned, pid, teacher)
        ev = evaluate_models(cfg, data, [teacher, baseline, student], pid)
    return {"acc": ev.test_acc, "params": ev.parameters}


def pct(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f} %"


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    sizes, seeds, classes, test_per_class = ARGS.per_class, ARGS.seeds, 10, 100
    extra = [*ARGS.overrides]
    if ARGS.dry_run:
        sizes, seeds, classes, test_per_class = [6], [0], 3, 4
        extra = [*DRY, *extra]
    pretrained = [f"teacher.pretrained={ARGS.pretrained}", *(["teacher.image_size=32"] if ARGS.dry_run else [])]
    teachers = {"from scratch": SCRATCH, "pretrained": pretrained}
    started, lines, raw = time.perf_counter(), [], {}
    header = "DRY RUN: mechanics only, tiny sizes; these numbers are not a measurement. " if ARGS.dry_run else ""
    lines += [
        f"{header}Fashion-MNIST as 32x32 RGB folders, {classes} classes, {test_per_class} test images per class; "
        f"seeds {', '.join(map(str, seeds))}; pretrained weights {ARGS.pretrained}",
        "",
        "| images per class | teacher | teacher test acc | KD student test acc | labels-only student |",
        "|---|---|---|---|---|",
    ]
    for n in [] if ARGS.no_images else sizes:
        root = write_folder(Path(ARGS.store) / f"fmnist-{classes}x{n}", n, test_per_class, classes)
        runs: dict[str, list[dict]] = {}
        for label, teacher in teachers.items():
            for seed in seeds:
                r = run_pair([f"data.root={root}", *teacher, *extra], seed, ARGS.store)
                runs.setdefault(label, []).append(r)
                print(f"# {n}/class {label} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["acc"].items()))
            acc = {role: [r["acc"][role] for r in runs[label]] for role in ("teacher", "student", "baseline")}
            lines.append(f"| {n} | {label} | {pct(acc['teacher'])} | {pct(acc['student'])} | {pct(acc['baseline'])} |")
        gain = [
            100 * (p["acc"]["student"] - s["acc"]["student"]) for p, s in zip(runs["pretrained"], runs["from scratch"])
        ]
        lines.append(f"| {n} | student gain from the pretrained teacher | | {statistics.fmean(gain):+.2f} points | |")
        raw[n] = runs
    lines += text_rows(seeds, raw)
    lines += ["", f"wall time {(time.perf_counter() - started) / 60:.1f} min, torch threads {ARGS.threads}"]
    print("\n".join(lines))
    if ARGS.output:
        Path(ARGS.output).write_text(json.dumps({"table": lines, "runs": raw}, indent=2))


def text_rows(seeds: list[int], raw: dict) -> list[str]:
    """fasttext from the preset's BiLSTM trained from scratch vs from the Hugging Face teacher, per corpus."""
    if not ARGS.text:
        return []
    lines = [
        "",
        f"Texts: fasttext students; teacher from scratch = the preset's BiLSTM, pretrained = {ARGS.hf_model} "
        f"(teacher.arch=hf); seeds {', '.join(map(str, seeds))}",
        "",
        "| corpus | teacher | teacher test acc | KD student test acc | labels-only student |",
        "|---|---|---|---|---|",
    ]
    teachers = {"from scratch": [], "pretrained (hf)": [*HF_TEACHER, f"teacher.pretrained={ARGS.hf_model}"]}
    for corpus in ARGS.text:
        dataset, _, root = corpus.partition("=")
        preset = TEXT_PRESET.get(dataset, "text_csv")
        extra = [f"data.dataset={dataset}", f"data.root={root}", *(TEXT_DRY if ARGS.dry_run else []), *ARGS.overrides]
        runs: dict[str, list[dict]] = {}
        for label, teacher in teachers.items():
            for seed in seeds:
                r = run_pair([*extra, *teacher], seed, ARGS.store, preset=preset)
                runs.setdefault(label, []).append(r)
                print(f"# {dataset} {label} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["acc"].items()))
            acc = {role: [r["acc"][role] for r in runs[label]] for role in ("teacher", "student", "baseline")}
            lines.append(
                f"| {dataset} | {label} | {pct(acc['teacher'])} | {pct(acc['student'])} | {pct(acc['baseline'])} |"
            )
        gain = [
            100 * (p["acc"]["student"] - s["acc"]["student"])
            for p, s in zip(runs["pretrained (hf)"], runs["from scratch"])
        ]
        lines.append(
            f"| {dataset} | student gain from the pretrained teacher | | {statistics.fmean(gain):+.2f} points | |"
        )
        raw[dataset] = runs
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[100, 1000], help="training images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--pretrained", default="IMAGENET1K_V1", help="teacher.pretrained: a resnet18 weights name or a state dict"
    )
    parser.add_argument(
        "--text", action="append", default=[], metavar="DATASET=ROOT", help="a text corpus, e.g. imdb=data/imdb"
    )
    parser.add_argument(
        "--hf-model", default="distilbert-base-uncased", help="the texts' pretrained teacher: a model id or folder"
    )
    parser.add_argument("--no-images", action="store_true", help="skip the Fashion-MNIST image folders")
    parser.add_argument("--fmnist-root", default=DEFAULT_ROOT, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--store", default="/tmp/kdflow-pretrained-bench", help="image folders, MLflow, Optuna, caches")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="also write the table and raw numbers as JSON")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run every stage once at tiny sizes (3 classes, 6 images each, 1 epoch, seed 0) to check the mechanics",
    )
    ARGS = parser.parse_args()
    main()
