"""Text loaders on tiny trees written here: aclImdb, ag_news, CSV, JSONL, folder-per-class; bad input."""

import csv
import http.server
import io
import json
import logging
import socket
import tarfile
import threading
from pathlib import Path

import pytest
import torch

from kdcore.data import DataBundle, DataError
from kdcore.datasets import load_dataset
from kdcore.text.imdb_archive import download_aclimdb
from kdcore.text.settings import TextSettings
from kdcore.text.tokenizer import PAD_ID, UNK_ID, Tokenizer, lengths_of

POS = [
    "a wonderful moving film",
    "great acting and a great story",
    "loved it, brilliant",
    "superb and moving",
    "brilliant cast, wonderful score",
    "great fun",
    "moving and great",
    "wonderful film",
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
]


def write_aclimdb(root: Path, test_extra: str = "") -> Path:
    folder = root / "aclImdb"
    for split in ("train", "test"):
        for label, texts in (("pos", POS), ("neg", NEG)):
            d = folder / split / label
            d.mkdir(parents=True)
            for i, text in enumerate(texts):
                (d / f"{i}_{8 if label == 'pos' else 2}.txt").write_text(text + (test_extra if split == "test" else ""))
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "0_0.txt").write_text("unlabelled review")
    return folder


def test_aclimdb_layout_official_test_split_and_train_only_vocabulary(tmp_path):
    write_aclimdb(tmp_path, test_extra=" zebra")
    b = load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0, text=TextSettings(min_freq=1, max_len=5))
    assert b.classes == ["neg", "pos"] and b.num_classes == 2
    assert {n: len(s) for n, s in b.splits().items()} == {"train": 12, "val": 4, "test": 16}
    assert torch.bincount(b.val.y).tolist() == [2, 2]  # stratified
    tokens = b.tokenizer["tokens"]
    assert tokens[:2] == ["<pad>", "<unk>"] and "zebra" not in tokens  # only in test files
    assert "unlabelled" not in tokens  # train/unsup is not read
    assert b.train.x.dtype == torch.long and b.input_shape == (b.train.x.shape[1],) and b.input_shape[0] <= 5
    assert b.model_options() == {"vocab_size": len(tokens)}
    assert (b.test.x == UNK_ID).any() and not (b.train.x == UNK_ID).any()  # "zebra" is out of vocabulary
    assert int(lengths_of(b.test.x).min()) >= 1
    again = load_dataset("imdb", str(tmp_path / "aclImdb"), 0.25, 0.2, seed=0, text=TextSettings(min_freq=1, max_len=5))
    assert again.digest == b.digest  # root may also be the aclImdb folder itself


def test_bundle_with_vocabulary_round_trips_through_weights_only(tmp_path):
    write_aclimdb(tmp_path)
    b = load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0, text=TextSettings(min_freq=1))
    torch.save(b.state_dict(), tmp_path / "b.pt")
    again = DataBundle.from_state_dict(torch.load(tmp_path / "b.pt", weights_only=True))
    assert again.tokenizer == b.tokenizer and again.digest == b.digest
    other = load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0, text=TextSettings(min_freq=1, vocab_size=6))
    assert other.digest != b.digest


def test_bad_files_are_named_with_line_and_rejected_or_skipped(tmp_path, caplog):
    folder = write_aclimdb(tmp_path)
    (folder / "train" / "pos" / "9_9.txt").write_bytes(b"fine first line\nthen \xff\xfe bytes")
    (folder / "train" / "neg" / "9_1.txt").write_text("   \n")
    with pytest.raises(DataError) as e:
        load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0)
    assert str(e.value).startswith(f"{folder / 'train' / 'neg' / '9_1.txt'}:1: empty text;")
    assert "data.strict=false" in str(e.value)
    (folder / "train" / "neg" / "9_1.txt").write_text("dull")
    with pytest.raises(DataError, match=r"9_9\.txt:2: undecodable bytes at byte 21"):
        load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0)
    with caplog.at_level(logging.WARNING, logger="kdflow"):
        b = load_dataset("imdb", str(tmp_path), 0.25, 0.2, seed=0, text=TextSettings(strict=False))
    assert sum(len(s) for s in b.splits().values()) == 33  # 32 + the fixed file; the undecodable one skipped
    assert "9_9.txt:2" in caplog.text and "skipped 1 bad record" in caplog.text


def test_missing_aclimdb_and_unreachable_archive_names_the_root(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on: the download fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from kdcore.text.datasets import load_imdb

    with pytest.raises(DataError) as e:
        load_imdb(str(tmp_path / "imdb"), 0.1, 0.2, 0, url=f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz")
    message = str(e.value)
    assert f"no aclImdb folder under data.root={tmp_path / 'imdb'}" in message and "tar -xzf" in message
    assert not (tmp_path / "imdb" / "aclImdb").exists()
    with pytest.raises(DataError, match="data.root is empty; imdb needs"):
        load_dataset("imdb", None, 0.1, 0.2, 0)


def test_aclimdb_is_downloaded_and_unpacked_when_absent(tmp_path):
    source = write_aclimdb(tmp_path / "src")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source, arcname="aclImdb")
    payload = archive.getvalue()

    class Archive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = download_aclimdb(tmp_path / "data", f"http://127.0.0.1:{server.server_port}/aclImdb_v1.tar.gz")
    finally:
        server.shutdown()
        server.server_close()
    assert folder == tmp_path / "data" / "aclImdb"
    assert sorted(p.name for p in (folder / "test" / "pos").iterdir()) == sorted(
        p.name for p in (source / "test" / "pos").iterdir()
    )
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["aclImdb"]  # no archive or temp folder left
    assert len(load_dataset("imdb", str(tmp_path / "data"), 0.25, 0.2, 0, text=TextSettings(min_freq=1)).test) == 16


def write_csv(path: Path, rows, header=("id", "review", "sentiment")):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_with_configured_columns_split_three_ways(tmp_path):
    rows = [(i, t, "pos") for i, t in enumerate(POS)] + [(100 + i, t, "neg") for i, t in enumerate(NEG)]
    rows[0] = (0, "a wonderful\nmoving film", "pos")  # a quoted field over two lines
    path = write_csv(tmp_path / "reviews.csv", rows)
    s = TextSettings(text_column="review", label_column="sentiment", min_freq=1)
    b = load_dataset("text_csv", str(path), 0.25, 0.25, 0, text=s)
    assert b.classes == ["neg", "pos"] and b.name == "text_csv"
    assert {n: len(x) for n, x in b.splits().items()} == {"train": 8, "val": 4, "test": 4}
    with pytest.raises(
        DataError, match=r"no column 'text' in the header \['id', 'review', 'sentiment'\]; set data.text.text_column"
    ):
        load_dataset("text_csv", str(path), 0.25, 0.25, 0)


def test_csv_bad_rows_are_reported_with_their_line(tmp_path):
    rows = [(i, t, "pos") for i, t in enumerate(POS)] + [(100 + i, t, "neg") for i, t in enumerate(NEG)]
    rows.insert(1, (1, "multi\nline\ntext", "pos"))  # lines 3-5
    rows.insert(2, (2, "   ", "neg"))  # line 6
    rows.insert(3, (3, "no label here", ""))  # line 7
    rows.insert(4, (4, "an unknown label", "meh"))  # line 8
    path = write_csv(tmp_path / "reviews.csv", rows)
    raw = path.read_bytes().replace(b"awful mess", b"awful \xe9 mess")  # latin-1, not UTF-8
    path.write_bytes(raw)
    bad_line = raw[: raw.index(b"\xe9")].count(b"\n") + 1
    s = dict(text_column="review", label_column="sentiment", min_freq=1)
    with pytest.raises(DataError, match=r"reviews\.csv:6: empty text;"):
        load_dataset("text_csv", str(path), 0.25, 0.25, 0, text=TextSettings(**s))
    problems = []
    logging.getLogger("kdflow").addHandler(handler := logging.Handler())
    handler.emit = lambda record: problems.append(record.getMessage())
    try:
        b = load_dataset(
            "text_csv", str(path), 0.25, 0.25, 0, text=TextSettings(**s, labels=("neg", "pos"), strict=False)
        )
    finally:
        logging.getLogger("kdflow").removeHandler(handler)
    skipped = [p for p in problems if p.startswith("data: skipped")]
    assert [p.split(": ")[1].removeprefix("skipped ") for p in skipped] == [
        f"{path}:6",
        f"{path}:7",
        f"{path}:8",
        f"{path}:{bad_line}",
    ]
    assert "label 'meh' is not one of ['neg', 'pos']" in skipped[2] and "undecodable bytes" in skipped[3]
    assert sum(len(x) for x in b.splits().values()) == 16  # 15 good rows of the fixture + the multi-line one


def test_csv_folder_with_test_file_rejects_labels_unseen_in_train(tmp_path):
    write_csv(
        tmp_path / "train.csv", [(i, t, "pos") for i, t in enumerate(POS)] + [(i, t, "neg") for i, t in enumerate(NEG)]
    )
    write_csv(tmp_path / "test.csv", [(0, "fine film", "pos"), (1, "new class", "neutral")])
    s = TextSettings(text_column="review", label_column="sentiment")
    with pytest.raises(DataError, match=r"test\.csv:3: label 'neutral' is not one of \['neg', 'pos'\]"):
        load_dataset("text_csv", str(tmp_path), 0.25, 0.25, 0, text=s)
    b = load_dataset("text_csv", str(tmp_path), 0.25, 0.25, 0, text=TextSettings(**{**s.__dict__, "strict": False}))
    assert len(b.test) == 1 and len(b.train) + len(b.val) == 16


def test_jsonl_with_numeric_labels_and_bad_lines(tmp_path):
    lines = [json.dumps({"body": t, "stars": 5}) for t in POS] + [json.dumps({"body": t, "stars": 1}) for t in NEG]
    lines[3:3] = ["", "{not json", json.dumps({"body": "no stars"}), json.dumps(["a list"])]  # lines 4-7
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n")
    s = dict(text_column="body", label_column="stars", min_freq=1)
    with pytest.raises(DataError, match=r"reviews\.jsonl:5: not a JSON object"):
        load_dataset("text_jsonl", str(path), 0.25, 0.25, 0, text=TextSettings(**s))
    b = load_dataset("text_jsonl", str(path), 0.25, 0.25, 0, text=TextSettings(**s, strict=False))
    assert b.classes == ["1", "5"] and sum(len(x) for x in b.splits().values()) == 16


def test_folder_per_class_with_and_without_train_test(tmp_path):
    for label, texts in (("ham", POS), ("spam", NEG), ("eggs", POS[:4] + NEG[:4])):
        (tmp_path / "flat" / label).mkdir(parents=True)
        for i, t in enumerate(texts):
            (tmp_path / "flat" / label / f"{i}.txt").write_text(t)
    (tmp_path / "flat" / "notes").mkdir()  # no .txt files: not a class
    b = load_dataset("text_folder", str(tmp_path / "flat"), 0.25, 0.25, 0, text=TextSettings(min_freq=1))
    assert b.classes == ["eggs", "ham", "spam"] and sum(len(x) for x in b.splits().values()) == 24
    with pytest.raises(DataError, match="data.root=.*nowhere does not exist; text_folder needs"):
        load_dataset("text_folder", str(tmp_path / "nowhere"), 0.25, 0.25, 0)


def test_ag_news_csv_files(tmp_path):
    rows = [
        (1 + i % 4, f"Title {w}", f"{w} story number {i}") for i, w in enumerate(["war", "goal", "stocks", "chips"] * 4)
    ]
    write_csv(tmp_path / "train.csv", rows, header=None)
    write_csv(tmp_path / "test.csv", rows[:8] + [(5, "Odd", "class five")], header=None)
    with pytest.raises(DataError, match=r"test\.csv:9: label '5' is not one of \['1', '2', '3', '4'\]"):
        load_dataset("ag_news", str(tmp_path), 0.25, 0.2, 0)
    b = load_dataset("ag_news", str(tmp_path), 0.25, 0.2, 0, text=TextSettings(strict=False, min_freq=1))
    assert b.classes == ["World", "Sports", "Business", "Sci/Tech"] and len(b.test) == 8
    tok = Tokenizer.from_state_dict(b.tokenizer)
    assert "title" in tok.tokens and "story" in tok.tokens  # title and description both read
    assert b.test.y[:4].tolist() == [0, 1, 2, 3]
    assert (b.test.x[:, 0] != PAD_ID).all()
