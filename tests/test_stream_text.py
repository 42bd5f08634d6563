"""Text batches in the stream store: CSV, JSONL and folder-per-class ingest, whole-batch rejection, duplicates.
A text pipeline's student learning a text batch: tests/test_retrain_text.py."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from pipelines.stream import StreamStore, ingest
from pipelines.stream.readers import BatchError, TextColumns

POS = [
    "a wonderful moving film",
    "great acting and a great story",
    "loved it, brilliant",
    "superb and moving",
    "brilliant cast, wonderful score",
    "great fun",
    "moving and great",
    "wonderful film",
    "great great film",
    "superb fun",
]
NEG = [
    "a dull boring film",
    "awful acting and a dull story",
    "hated it, terrible",
    "boring and awful",
    "terrible cast, dull score",
    "awful mess",
    "dull and boring",
    "terrible film",
    "awful awful film",
    "boring mess",
]


def records(suffix: str = "") -> list[tuple[str, str]]:
    return [(t + suffix, "pos") for t in POS] + [(t + suffix, "neg") for t in NEG]


def write_csv(path: Path, rows, columns=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows, keys=("text", "label")) -> Path:
    path.write_text("".join(json.dumps(dict(zip(keys, r))) + "\n" for r in rows), encoding="utf-8")
    return path


def write_folder(root: Path, rows) -> Path:
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return root


def stored_texts(batch, part):
    return sorted(zip(*batch.texts(part)))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "text-folder"])
def test_each_text_format_is_ingested_split_and_manifested(tmp_path, fmt):
    rows = records()
    source = {
        "csv": lambda: write_csv(tmp_path / "b.csv", rows),
        "jsonl": lambda: write_jsonl(tmp_path / "b.jsonl", rows),
        "text-folder": lambda: write_folder(tmp_path / "b", rows),
    }[fmt]()
    r = ingest(source, tmp_path / "store", "reviews", test_fraction=0.2)
    assert not r.duplicate and r.classes == ["neg", "pos"]
    assert r.counts == {"train": {"neg": 8, "pos": 8}, "test": {"neg": 2, "pos": 2}}  # stratified
    store = StreamStore(tmp_path / "store", "reviews")
    batch = store.batches()[0]
    m = json.loads((batch.path / "manifest.json").read_text())
    assert m["modality"] == "text" and m["classes"] == ["neg", "pos"] and m["arrived_at"]
    assert m["files"] == {
        name: hashlib.sha256((batch.path / name).read_bytes()).hexdigest() for name in ("train.jsonl", "test.jsonl")
    }
    assert len(m["source_files"]) == (20 if fmt == "text-folder" else 1)
    assert store.settings()["modality"] == "text"
    assert sorted(stored_texts(batch, "train") + stored_texts(batch, "test")) == sorted(
        rows
    )  # nothing lost, nothing added
    # the same file into another store splits the same way (seeded by the content)
    again = StreamStore(tmp_path / "store2", "reviews")
    ingest(source, again.root, "reviews")
    assert stored_texts(again.batches()[0], "test") == stored_texts(batch, "test")


def test_named_columns_and_explicit_format(tmp_path):
    path = write_csv(tmp_path / "export.data", [(lbl, txt) for txt, lbl in records()], columns=("sentiment", "review"))
    with pytest.raises(BatchError, match="cannot tell the format.*--format"):
        ingest(path, tmp_path / "store", "r")
    with pytest.raises(
        BatchError,
        match=r"no column 'text' in the header \['sentiment', 'review'\]; rename the column or pass --text-column",
    ):
        ingest(path, tmp_path / "store", "r", fmt="csv")
    r = ingest(path, tmp_path / "store", "r", fmt="csv", columns=TextColumns(text="review", label="sentiment"))
    assert r.classes == ["neg", "pos"] and sum(r.counts["train"].values()) == 16


def test_same_records_in_another_format_and_order_are_a_duplicate(tmp_path):
    first = ingest(write_csv(tmp_path / "a.csv", records()), tmp_path / "store", "r")
    again = ingest(write_jsonl(tmp_path / "b.jsonl", list(reversed(records()))), tmp_path / "store", "r")
    assert again.duplicate and again.batch_id == first.batch_id
    assert not ingest(write_folder(tmp_path / "c", records(" again")), tmp_path / "store", "r").duplicate
    assert len(StreamStore(tmp_path / "store", "r").batches()) == 2


def bad_utf8_csv(tmp_path):
    path = write_csv(tmp_path / "b.csv", records())
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"caf\xe9 au lait,pos\r"  # Latin-1, not UTF-8, on line 4
    path.write_bytes(b"\n".join(lines))
    return path


def missing_key_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", records())
    with open(path, "a") as f:
        f.write(json.dumps({"txt": "typo in the key", "label": "pos"}) + "\n")
    return path


def bad_utf8_txt(tmp_path):
    root = write_folder(tmp_path / "b", records())
    (root / "neg" / "007.txt").write_bytes(b"ok first line\nbad \xff\xfe second line")
    return root


def stray_file(tmp_path):
    root = write_folder(tmp_path / "b", records())
    (root / "pos" / "notes.md").write_text("not a text of the batch")
    return root


REJECTIONS = {
    "bad utf-8 in a csv": (
        bad_utf8_csv,
        r"b\.csv:4: undecodable bytes \(the file is not UTF-8\); fix or remove that record",
    ),
    "missing csv column": (
        lambda p: write_csv(p / "b.csv", records(), columns=("body", "label")),
        r"no column 'text'.*--text-column",
    ),
    "missing jsonl key": (missing_key_jsonl, r"b\.jsonl:21: missing text; fix or remove"),
    "empty text": (lambda p: write_jsonl(p / "b.jsonl", records() + [("   ", "neg")]), r"b\.jsonl:21: empty text"),
    "missing label": (
        lambda p: write_csv(p / "b.csv", records()[:5] + [("no label here", "")]),
        r"b\.csv:7: missing label",
    ),
    "bad utf-8 in a .txt": (bad_utf8_txt, r"neg/007\.txt:2: undecodable bytes"),
    "stray file in a folder": (stray_file, r"holds \.txt files but also .*pos/notes\.md"),
    "no texts": (lambda p: write_csv(p / "b.csv", []), r"holds no labelled texts"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_a_bad_record_rejects_the_whole_batch(tmp_path, case):
    make, message = REJECTIONS[case]
    with pytest.raises(BatchError, match=message) as e:
        ingest(make(tmp_path), tmp_path / "store", "r")
    assert "\n" not in str(e.value) and str(e.value).endswith("(nothing was ingested)")
    store = StreamStore(tmp_path / "store", "r")
    assert store.batches() == [] and store.settings() is None
    assert not store.incoming_dir.exists() or list(store.incoming_dir.iterdir()) == []


def test_domain_incremental_text_stream_rejects_an_unknown_label_by_line(tmp_path):
    ingest(write_csv(tmp_path / "a.csv", records()), tmp_path / "store", "d", scenario="domain-il")
    rows = records(" later") + [("meh, it was fine", "neutral")]
    with pytest.raises(
        BatchError, match=r"b\.jsonl:21: label 'neutral' is not among the stream's classes \['neg', 'pos'\].*class-il"
    ):
        ingest(write_jsonl(tmp_path / "b.jsonl", rows), tmp_path / "store", "d")
    assert len(StreamStore(tmp_path / "store", "d").batches()) == 1


def test_texts_and_images_do_not_share_a_stream(tmp_path):
    import numpy as np

    ingest(write_csv(tmp_path / "a.csv", records()), tmp_path / "store", "t")
    np.savez(tmp_path / "x.npz", inputs=np.zeros((10, 4, 4), dtype=np.uint8), labels=np.arange(10) % 2)
    with pytest.raises(BatchError, match="this batch holds images but stream 't' holds texts"):
        ingest(tmp_path / "x.npz", tmp_path / "store", "t")
    ingest(tmp_path / "x.npz", tmp_path / "store", "i")
    with pytest.raises(BatchError, match="this batch holds texts but stream 'i' holds images"):
        ingest(tmp_path / "a.csv", tmp_path / "store", "i")
    mixed = write_folder(tmp_path / "mixed", records())
    (mixed / "pos" / "cover.png").write_bytes(b"\x89PNG")
    with pytest.raises(BatchError, match=r"holds \.txt files but also .*cover\.png; a batch is either texts or images"):
        ingest(mixed, tmp_path / "store", "t")
    with pytest.raises(BatchError, match=r"cover\.png is not a \.txt file directly in a class folder"):
        ingest(mixed, tmp_path / "store", "t", fmt="text-folder")  # told it is texts: the odd file is still refused


def test_cli_text_ingest_rejects_a_bad_batch_in_one_line_before_looking_for_a_champion(tmp_path, kdflow):
    write_csv(tmp_path / "a.csv", [(lbl, txt) for txt, lbl in records()], columns=("stars", "review"))
    proc, _ = kdflow("ingest", "a.csv", "--pipeline", "reviews", "--store", "store")
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "--text-column" in proc.stderr
    proc, _ = kdflow(
        "ingest",
        "a.csv",
        "--pipeline",
        "reviews",
        "--store",
        "store",
        "--text-column",
        "review",
        "--label-column",
        "stars",
    )
    # a well-formed batch: read, then refused for want of the pipeline's champion (nothing stored)
    assert proc.returncode == 1 and "run `kdflow run --preset reviews` first" in proc.stderr, proc.stderr
    assert not (tmp_path / "store" / "streams" / "reviews").exists()
