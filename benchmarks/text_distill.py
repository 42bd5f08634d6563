"""Text KD benchmark: teacher vs labels-only student vs KD student vs TF-IDF + logistic regression, accuracy, size
and CPU speed, on the same split in the same run.

Runs on whatever real text is here:
  IMDB:          python benchmarks/text_distill.py --imdb data/imdb
  your folders:  python benchmarks/text_distill.py --folder path/to/texts     (root/<class>/*.txt)
  your CSV:      python benchmarks/text_distill.py --csv reviews.csv --text-column review --label-column sentiment
  man pages:     python benchmarks/text_distill.py --build-from-man /usr/share/man --folder /tmp/man-sections
                 (builds root/<section>/<page>.txt from the manual's groff sources: predict a page's section)
  Debian packages: python benchmarks/text_distill.py --build-from-debian --folder /tmp/debian-sections
                 (root/<section>/<n>.txt from `apt-cache dumpavail`: predict a package's section from its description)

Uses kdcore directly (no MLflow, Prefect or Optuna): the same `fit`, `LabelsOnly` and `KD` as the pipeline.
The students are fasttext (--student-ngrams: 1 words, the default; 2 adds hashed bigrams). scikit-learn's TF-IDF
(word 1-2 grams) + logistic regression reads the same words the students read (the vocabulary's, the first
--max-len), its C chosen on the validation split; `--teacher tfidf_lr` makes it the teacher too (its soft targets
cross-fitted), `--teacher tfidf_chars_lr` teaches with character 2-5 grams of those words beside them.
--transfer DIR: unlabelled texts the teacher labels and the KD student trains on beside the labelled train split
(Bucilua et al. 2006; Hinton et al. 2015); --transfer-vocabulary counts the KD student's words on them too.
--no-teacher skips the teacher and the KD student. --seeds N repeats everything on N splits (each seed its own
split and initialisation) and reports the paired 95 % interval of KD minus labels-only and KD minus
TF-IDF + LR across them (benchmarks/paired.py).

Throughput: raw strings -> tokenizer -> model -> class, batch 256, on the CPU, teacher and student
interleaved in the same process, the median of several passes over the test texts.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired import paired_difference  # noqa: E402
from kdcore.data.bundle import Split  # noqa: E402
from kdcore.datasets import load_dataset  # noqa: E402
from kdcore.distill import KD, LabelsOnly  # noqa: E402
from kdcore.evaluate import evaluate, predict_logits  # noqa: E402
from kdcore.models import build_model, count_parameters  # noqa: E402
from kdcore.models.text.bag import BUCKETS  # noqa: E402
from kdcore.soft_targets import SoftTargets  # noqa: E402
from kdcore.text.settings import TextSettings  # noqa: E402
from kdcore.text.tokenizer import Tokenizer  # noqa: E402
from kdcore.train import TrainSettings, fit  # noqa: E402

SECTIONS = ("1", "2", "3", "5", "7", "8")
_ESCAPES = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\\*(\(..|\[[^\]]*\]|.)|\\\((..)|\\\[[^\]]*\]|\\[&|^%ce0-]")
_SECTION_REF = re.compile(r"\(\d[a-z]*\)")  # "ls(1)" would give the answer away


def man_page_text(source: str, max_words: int) -> str:
    """Prose of a groff man page: macro lines dropped (their arguments kept), escapes and section refs removed."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".TH", '.\\"', "'\\\"", ".so", ".ds", ".de", ".nr", ".if", ".ie", ".el")):
            continue
        if line.startswith((".", "'")):
            line = line.partition(" ")[2]  # .B foo / .SH NAME / .IR a b -> their text
        lines.append(line)
    text = _SECTION_REF.sub(" ", _ESCAPES.sub(" ", " ".join(lines)))
    return " ".join(text.split()[:max_words])


def build_from_man(
    man_root: Path, out: Path, per_class: int, max_words: int, seed: int, transfer: Path | None = None, cap: int = 0
) -> None:
    """out/<section>/<page>.txt for sections 1, 2, 3, 5, 7, 8: up to `per_class` pages each, seeded.

    With `transfer`, the pages left over (up to `cap` of each section) go to transfer/<page>.txt
    with no section: unlabelled texts for the teacher to label.
    """
    rng = random.Random(seed)
    for section in SECTIONS:
        pages = sorted((man_root / f"man{section}").glob("*.gz"))
        rng.shuffle(pages)
        folder = out / section
        folder.mkdir(parents=True, exist_ok=True)
        kept = left_over = 0
        for page in pages:
            if kept == per_class and (transfer is None or left_over == cap):
                break
            try:
                text = man_page_text(gzip.decompress(page.read_bytes()).decode("utf-8", errors="replace"), max_words)
            except (OSError, EOFError):
                continue
            if len(text.split()) < 40:  # stubs that only point to another page say nothing
                continue
            if kept < per_class:
                (folder / f"{page.name[:-3]}.txt").write_text(text)
                kept += 1
            else:
                transfer.mkdir(parents=True, exist_ok=True)
                (transfer / f"man{section}-{page.name[:-3]}.txt").write_text(text)
                left_over += 1
        print(f"man{section}: {kept} pages, {left_over} unlabelled", file=sys.stderr)


def debian_descriptions(dumpavail: str) -> dict[str, str]:
    """{description: section} from `apt-cache dumpavail`: each package's one-line Description, its Section without
    the archive area (contrib/, non-free/). A description that several sections share is dropped: it cannot be
    labelled, and its copies would cross the splits."""
    sections: dict[str, set[str]] = {}
    seen = set()
    for record in dumpavail.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in record.splitlines() if line[:1] not in (" ", "\t", ""))
        if {"Package", "Section", "Description"} - fields.keys() or fields["Package"] in seen:
            continue
        seen.add(fields["Package"])  # the updates and security lists repeat packages
        sections.setdefault(fields["Description"].strip(), set()).add(fields["Section"].rpartition("/")[2])
    return {text: next(iter(s)) for text, s in sections.items() if len(s) == 1}


def build_from_debian(
    out: Path, min_packages: int, per_class: int, seed: int, transfer: Path | None = None, cap: int = 0
) -> None:
    """out/<section>/<n>.txt: the sections with at least `min_packages` distinct descriptions, `per_class` each.
    With `transfer`, those sections' other descriptions (up to `cap` each) go to
    transfer/<section>-<n>.txt, unlabelled: the section is in the file name only for the record, nothing reads it.

    The text is the Description's first line (the apt lists here hold no Translation-en, so no long descriptions);
    the package name is left out: `python3-*`, `lib*-dev`, `golang-*` would give the section away.
    """
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    by_section: dict[str, list[str]] = {}
    for text, section in sorted(debian_descriptions(dump).items()):
        by_section.setdefault(section, []).append(text)
    rng = random.Random(seed)
    for section, texts in sorted(by_section.items()):
        if len(texts) < min_packages:
            continue
        rng.shuffle(texts)
        folder = out / section
        folder.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts[:per_class]):
            (folder / f"{i}.txt").write_text(text + "\n")
        left_over = texts[per_class : per_class + cap] if transfer else []
        for i, text in enumerate(left_over):
            transfer.mkdir(parents=True, exist_ok=True)
            (transfer / f"{section}-{i}.txt").write_text(text + "\n")
        print(
            f"{section}: {min(per_class, len(texts))} of {len(texts)} descriptions, {len(left_over)} unlabelled",
            file=sys.stderr,
        )


def train(arch, bundle, width, epochs, lr, distiller, logits, seed, **options):
    torch.manual_seed(seed)
    model = build_model(
        arch,
        bundle.input_shape,
        bundle.num_classes,
        **({"width": width} if width else {}),
        **bundle.model_options(),
        **options,
    )
    settings = TrainSettings(epochs=epochs, batch_size=32, lr=lr, weight_decay=1e-4, seed=seed)
    started = time.perf_counter()
    history = fit(
        model,
        bundle.train,
        bundle.val,
        settings,
        distiller,
        soft_targets=SoftTargets(logits=logits),
        on_epoch=lambda e, m: print(f"  epoch {e}: val/acc {m['val/acc']:.4f}", file=sys.stderr),
    )
    return model.eval(), history.kept["val/acc"], time.perf_counter() - started


def tfidf_logistic_regression(
    bundle, tokenizer: Tokenizer, seed: int, teach: bool = False, transfer=None, chars: bool = False
):
    """TF-IDF of word 1-2 grams + logistic regression on the students' words; C chosen on validation.
    `chars`: TF-IDF of character 2-5 grams (within words) beside the word features, one model on both.

    With `teach`, also its soft targets for the train split, cross-fitted (5 folds): each text scored by a model
    that did not see it, since a C=100 model scores its own training texts near one-hot and would teach nothing
    but the labels. `transfer` (token ids of unlabelled texts): also its log-probabilities on them, from the model
    fitted on the whole train split.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import FeatureUnion

    started = time.perf_counter()
    texts = {name: [tokenizer.decode(row) for row in split.x] for name, split in bundle.splits().items()}
    labels = {name: split.y.numpy() for name, split in bundle.splits().items()}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    if chars:
        char_grams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
        vectorizer = FeatureUnion([("words", vectorizer), ("chars", char_grams)])
    x = {"train": vectorizer.fit_transform(texts["train"])}
    x.update({name: vectorizer.transform(texts[name]) for name in ("val", "test")})
    fitted = {
        c: LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x["train"], labels["train"])
        for c in (1, 10, 100)
    }
    val = {c: m.score(x["val"], labels["val"]) for c, m in fitted.items()}
    best = max(val, key=val.get)
    logits = transfer_logits = None
    if transfer is not None:
        transfer_x = vectorizer.transform([tokenizer.decode(row) for row in transfer])
        transfer_logits = torch.from_numpy(fitted[best].predict_log_proba(transfer_x)).float()
    if teach:
        log_proba = cross_val_predict(
            LogisticRegression(C=best, max_iter=2000, random_state=seed),
            x["train"],
            labels["train"],
            cv=5,
            method="predict_log_proba",
        )
        logits = torch.from_numpy(log_proba).float()  # log-probabilities: their softmax is the model's probabilities
    facts = {
        "arch": f"tfidf-1-2gram{'+char-2-5gram' if chars else ''}+lr(C={best})",
        "test_acc": fitted[best].score(x["test"], labels["test"]),
        "val_acc": val[best],
        "parameters": int(fitted[best].coef_.size + fitted[best].intercept_.size),
        "train_seconds": round(time.perf_counter() - started, 1),
        "texts_per_second": None,
    }
    return facts, logits, transfer_logits


def with_transfer(bundle, logits: torch.Tensor, transfer: torch.Tensor, transfer_logits: torch.Tensor):
    """The bundle whose train split also holds the unlabelled transfer texts, and the soft targets for all of it.

    A transfer text's label is the teacher's top class: the KD loss's hard-label term reads it, weighted 1 - alpha.
    """
    x = torch.cat([bundle.train.x, transfer])
    y = torch.cat([bundle.train.y, transfer_logits.argmax(1)])
    return replace(bundle, train=Split(x, y)), torch.cat([logits, transfer_logits])


def with_vocabulary(bundle, texts: list[str], settings: TextSettings):
    """The bundle's splits encoded again with a vocabulary counted on its train texts and `texts` (unlabelled):
    the words only the transfer texts hold get an embedding the student learns from the teacher's soft targets."""
    tokenizer = Tokenizer.fit(
        [*bundle.train.texts, *texts], settings.vocab_size, settings.min_freq, settings.max_len, settings.lowercase
    )
    width = bundle.input_shape[0]
    splits = {n: Split(tokenizer.encode(s.texts, width)[0], s.y, s.texts) for n, s in bundle.splits().items()}
    return replace(bundle, **splits, tokenizer=tokenizer.state_dict()), tokenizer


def read_transfer(folder: Path) -> list[str]:
    """Unlabelled texts: every folder/*.txt, in sorted order."""
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.glob("*.txt"))]
    if not texts:
        raise SystemExit(f"--transfer {folder} holds no .txt files; build it with --build-from-* or point it elsewhere")
    return texts


@torch.no_grad()
def texts_per_second(models: dict, texts: list[str], repeats: int) -> dict[str, float]:
    """Raw strings to predicted classes, batch 256, each model (role: (model, tokenizer)) through its tokenizer;
    models take turns so both see the same machine load."""
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, (model, tokenizer) in models.items():
            started = time.perf_counter()
            for i in range(0, len(texts), 256):
                model(tokenizer.encode(texts[i : i + 256])[0]).argmax(1)
            times[name].append(time.perf_counter() - started)
    return {name: len(texts) / statistics.median(t) for name, t in times.items()}


def run_seed(
    a, name: str, root: str, settings: TextSettings, seed: int, timed: bool, transfer_texts: list[str] | None = None
) -> dict:
    """One split (seed) and every model on it; `timed`: also the CPU throughput of the torch models.
    `transfer_texts`: unlabelled texts the teacher labels for the KD student (not for the labels-only one)."""
    bundle = load_dataset(name, root, 0.15, 0.2, seed, text=settings)
    sizes = {k: len(v) for k, v in bundle.splits().items()}
    print(
        f"seed {seed}: {name} {root} {sizes}, {bundle.num_classes} classes, "
        f"vocabulary {len(bundle.tokenizer['tokens'])}, padded length {bundle.input_shape[0]}",
        file=sys.stderr,
    )
    tokenizer = Tokenizer.from_state_dict(bundle.tokenizer)
    teaches = a.teacher in ("tfidf_lr", "tfidf_chars_lr") and not a.no_teacher
    transfer = None if transfer_texts is None else tokenizer.encode(transfer_texts, bundle.input_shape[0])[0]
    print("TF-IDF + logistic regression:", file=sys.stderr)
    tfidf, tfidf_logits, tfidf_transfer = tfidf_logistic_regression(
        bundle, tokenizer, seed, teach=a.teacher == "tfidf_lr" and teaches, transfer=transfer if teaches else None
    )
    tfidf_teacher = tfidf
    if teaches and a.teacher == "tfidf_chars_lr":
        print("teacher: TF-IDF of words and characters + logistic regression:", file=sys.stderr)
        tfidf_teacher, tfidf_logits, tfidf_transfer = tfidf_logistic_regression(
            bundle, tokenizer, seed, teach=True, transfer=transfer, chars=True
        )

    ngrams = (
        {"ngrams": a.student_ngrams, "buckets": a.buckets, "weighted": a.student_weighted}
        if a.student == "fasttext"
        else {}
    )
    trained = {}  # role: (arch, model, seconds, val acc, its bundle, its tokenizer)
    logits = transfer_logits = None
    if teaches:
        logits, transfer_logits = tfidf_logits, tfidf_transfer
    elif not a.no_teacher:
        print(f"teacher {a.teacher}:", file=sys.stderr)
        teacher, teacher_val, teacher_s = train(
            a.teacher, bundle, a.teacher_width, a.teacher_epochs, 2e-3, LabelsOnly(), None, seed
        )
        trained["teacher"] = (a.teacher, teacher, teacher_s, teacher_val, bundle, tokenizer)
        logits = predict_logits(teacher, bundle.train.x, 256)
        if transfer is not None:
            transfer_logits = predict_logits(teacher, transfer, 256)
    print(f"labels-only student {a.student} {ngrams}:", file=sys.stderr)
    student_lr = a.student_lr
    baseline, baseline_val, baseline_s = train(
        a.student, bundle, a.student_width, a.student_epochs, student_lr, LabelsOnly(), None, seed, **ngrams
    )
    trained["baseline"] = (a.student, baseline, baseline_s, baseline_val, bundle, tokenizer)
    if logits is not None:
        kd_bundle, kd_tokenizer = bundle, tokenizer
        if transfer is not None:
            kd_transfer = transfer
            if a.transfer_vocabulary:
                kd_bundle, kd_tokenizer = with_vocabulary(bundle, transfer_texts, settings)
                kd_transfer = kd_tokenizer.encode(transfer_texts, bundle.input_shape[0])[0]
            kd_bundle, logits = with_transfer(kd_bundle, logits, kd_transfer, transfer_logits)
        print(
            f"KD student {a.student} (T={a.temperature}, alpha={a.alpha}, {len(kd_bundle.train)} train texts):",
            file=sys.stderr,
        )
        student, student_val, student_s = train(
            a.student,
            kd_bundle,
            a.student_width,
            a.student_epochs,
            student_lr,
            KD(a.temperature, a.alpha),
            logits,
            seed,
            **ngrams,
        )
        trained["kd_student"] = (a.student, student, student_s, student_val, kd_bundle, kd_tokenizer)

    test_texts = bundle.test.texts or [tokenizer.decode(row) for row in bundle.test.x]
    speed = {}
    if timed:
        roles = [role for role in ("teacher", "kd_student", "baseline") if role in trained]
        speed = texts_per_second({r: (trained[r][1], trained[r][5]) for r in roles}, test_texts, a.repeats)
    models = {
        role: {
            "arch": arch,
            "vocabulary": len(tok),
            "test_acc": evaluate(m, b.test, 256)["acc"],
            "val_acc": val,
            "parameters": count_parameters(m),
            "train_seconds": round(s, 1),
            "texts_per_second": round(speed[role], 1) if role in speed else None,
        }
        for role, (arch, m, s, val, b, tok) in trained.items()
    }
    models["tfidf_lr"] = tfidf
    if teaches:
        models["teacher"] = tfidf_teacher | {"arch": tfidf_teacher["arch"] + ", cross-fitted soft targets"}
    return {
        "sizes": sizes,
        "classes": bundle.classes,
        "vocabulary": len(tokenizer),
        "padded_length": bundle.input_shape[0],
        "models": models,
    }


def percent(values: list[float]) -> list[float]:
    return [100 * v for v in values]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--imdb", help="folder holding aclImdb/")
    source.add_argument("--folder", help="root/<class>/*.txt (or root/train|test/<class>/*.txt)")
    source.add_argument("--csv", help="CSV file with a header row")
    built = p.add_mutually_exclusive_group()
    built.add_argument(
        "--build-from-man", metavar="MAN_ROOT", help="first build --folder from man pages under MAN_ROOT"
    )
    built.add_argument(
        "--build-from-debian", action="store_true", help="first build --folder from `apt-cache dumpavail`"
    )
    p.add_argument("--per-class", type=int, default=400, help="texts per class (with --build-from-*)")
    p.add_argument("--man-words", type=int, default=256, help="words kept per man page (with --build-from-man)")
    p.add_argument(
        "--min-packages", type=int, default=1000, help="sections kept (with --build-from-debian): this many or more"
    )
    p.add_argument(
        "--transfer",
        type=Path,
        help="unlabelled texts (*.txt) the teacher labels for the KD student (--build-from-* writes spare ones here)",
    )
    p.add_argument(
        "--transfer-vocabulary",
        action="store_true",
        help="the KD student's vocabulary counted on the train and the transfer texts (not the train texts alone)",
    )
    p.add_argument(
        "--transfer-per-class",
        type=int,
        default=100_000,
        help="cap of each class's texts --build-from-* writes to --transfer",
    )
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--vocab-size", type=int, default=20_000)
    p.add_argument(
        "--teacher",
        default="bilstm",
        help="a text arch, or tfidf_lr / tfidf_chars_lr (TF-IDF of words / and characters + LR, cross-fitted)",
    )
    p.add_argument("--teacher-width", type=int, default=128)
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student", default="fasttext")
    p.add_argument("--student-width", type=int, default=64)
    p.add_argument("--student-epochs", type=int, default=20)
    p.add_argument("--student-lr", type=float, default=5e-3)
    p.add_argument("--student-ngrams", type=int, default=1, help="word n-grams of the fasttext students (1: words)")
    p.add_argument(
        "--student-weighted", action="store_true", help="fasttext students weight their mean by a learned word score"
    )
    p.add_argument("--buckets", type=int, default=BUCKETS, help="hash buckets of those n-grams")
    p.add_argument("--no-teacher", action="store_true", help="labels-only students and TF-IDF + LR only")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=5, help="timed passes over the test texts per model (first seed)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (training and timing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="seeds seed..seed+N-1: a split and an init each, paired")
    p.add_argument("--output", type=Path, help="also write the results as JSON")
    a = p.parse_args()

    torch.set_num_threads(a.threads)  # on a shared box, one thread each avoids oversubscription stalls
    settings = TextSettings(
        max_len=a.max_len, vocab_size=a.vocab_size, text_column=a.text_column, label_column=a.label_column, strict=False
    )
    if (a.build_from_man or a.build_from_debian) and not a.folder:
        p.error("--build-from-man and --build-from-debian need --folder (where the class folders are written)")
    if a.transfer_vocabulary and not a.transfer:
        p.error("--transfer-vocabulary needs --transfer (the unlabelled texts whose words it counts)")
    if a.transfer and a.no_teacher:
        p.error("--transfer needs a teacher to label the texts: drop --no-teacher")
    if a.build_from_man:
        build_from_man(
            Path(a.build_from_man), Path(a.folder), a.per_class, a.man_words, a.seed, a.transfer, a.transfer_per_class
        )
    if a.build_from_debian:
        build_from_debian(Path(a.folder), a.min_packages, a.per_class, a.seed, a.transfer, a.transfer_per_class)
    transfer_texts = read_transfer(a.transfer) if a.transfer else None
    name, root = ("imdb", a.imdb) if a.imdb else ("text_folder", a.folder) if a.folder else ("text_csv", a.csv)

    seeds = list(range(a.seed, a.seed + a.seeds))
    runs = [run_seed(a, name, root, settings, seed, i == 0, transfer_texts) for i, seed in enumerate(seeds)]
    roles = list(runs[0]["models"])
    acc = {role: [r["models"][role]["test_acc"] for r in runs] for role in roles}
    result = {
        "data": {"name": name, "root": str(root), **{k: runs[0][k] for k in ("sizes", "classes", "vocabulary")}},
        "kd": {"temperature": a.temperature, "alpha": a.alpha},
        "transfer": {"folder": str(a.transfer), "texts": len(transfer_texts)} if transfer_texts else None,
        "student_ngrams": a.student_ngrams,
        "buckets": a.buckets,
        "threads": a.threads,
        "seeds": seeds,
        "runs": runs,
        "test_acc": acc,
    }
    header = f"| model | arch (seed {seeds[0]}) | val accuracy | test accuracy | parameters | CPU texts/s |"
    print(f"\n{header}\n|---|---|---|---|---|---|")
    for role in roles:
        m = runs[0]["models"][role]
        test = percent(acc[role])
        val = percent([r["models"][role]["val_acc"] for r in runs])
        spread = f" ± {statistics.stdev(test):.2f}" if len(test) > 1 else ""
        tps = "" if m["texts_per_second"] is None else f"{m['texts_per_second']:,.0f}"
        print(
            f"| {role} | {m['arch']} | {statistics.fmean(val):.2f} % | {statistics.fmean(test):.2f}{spread} % "
            f"| {m['parameters']:,} | {tps} |"
        )
    if len(seeds) > 1:
        pairs = [("kd_student", "baseline"), ("kd_student", "tfidf_lr"), ("teacher", "baseline")]
        result["paired"] = {}
        print(f"\ntest accuracy, paired over seeds {seeds}:")
        for x, y in pairs:
            if x in acc and y in acc:
                d = paired_difference(percent(acc[x]), percent(acc[y]))
                result["paired"][f"{x}-{y}"] = d.as_dict()
                print(f"  {x} - {y}: {d.sentence()}")
    teacher_vals = [
        r["models"]["teacher"]["val_acc"] - r["models"]["baseline"]["val_acc"] for r in runs if "teacher" in r["models"]
    ]
    if any(v <= 0 for v in teacher_vals):
        print(f"nothing to distil on {sum(v <= 0 for v in teacher_vals)} of {len(seeds)} seeds: the teacher's")
        print("validation accuracy was not above the labels-only student's there")
    speed = {role: runs[0]["models"][role]["texts_per_second"] for role in ("teacher", "kd_student")}
    if all(speed.values()):
        result["speedup"] = round(speed["kd_student"] / speed["teacher"], 1)
        print(f"\nstudent / teacher throughput: {result['speedup']}x")
    if a.output:
        a.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
