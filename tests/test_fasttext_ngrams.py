"""fasttext's hashed word n-grams: a fixed hash (the same bucket in every process), a table of its own that is the
only way n-grams reach the logits, and checkpoints written before n-grams existed load as the words-only model."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from kdcore.models import build_model, count_parameters
from kdcore.models.text.ngrams import hashed_ngrams
from pipelines.cache.checkpoint import load_model, save_model
from pipelines.config.schema import load_config

IDS = torch.tensor([[5, 6, 7, 8, 0, 0], [3, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 7]])
PRINT_BUCKETS = "import torch; from kdcore.models.text.ngrams import hashed_ngrams as h; print(h({}, 3, 1000).tolist())"


def test_hashing_is_the_same_in_another_process_and_skips_padding():
    here = hashed_ngrams(IDS, 3, 1000)
    code = PRINT_BUCKETS.format(f"torch.tensor({IDS.tolist()})")
    # another interpreter, another hash() salt: the buckets must not move
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).parents[1])},
    ).stdout
    assert here.tolist() == eval(there)
    bigrams = here[:, :5]  # 5 bigram windows of 6 ids, then 4 trigram windows
    assert (bigrams[0, :3] > 0).all() and (bigrams[0, 3:] == 0).all()  # (5,6) (6,7) (7,8), nothing into padding
    assert (bigrams[1] == 0).all()  # one word: no bigram
    assert here.min() >= 0 and here.max() <= 1000
    assert bigrams[0, 0] == bigrams[2, 3]  # (5, 6) lands in the same bucket wherever it occurs
    assert hashed_ngrams(torch.tensor([[5, 6]]), 2, 1000)[0, 0] != hashed_ngrams(torch.tensor([[6, 5]]), 2, 1000)[0, 0]


def test_ngrams_reach_the_logits_only_through_their_table():
    torch.manual_seed(0)
    words = build_model("fasttext", (6,), 3, vocab_size=12, width=8)
    both = build_model("fasttext", (6,), 3, vocab_size=12, width=8, ngrams=2, buckets=50)
    assert set(both.state_dict()) - set(words.state_dict()) == {"ngram_bag.weight"}
    both.load_state_dict({**words.state_dict(), "ngram_bag.weight": both.ngram_bag.weight.detach()})
    assert not torch.allclose(both(IDS), words(IDS))
    with torch.no_grad():
        both.ngram_bag.weight.zero_()
    assert torch.equal(both(IDS), words(IDS))
    # parameters: (buckets + 1 padding row) x width more than the words-only model
    assert count_parameters(both) - count_parameters(words) == 51 * 8
    assert count_parameters(words) == 12 * 8 + 8 * 3 + 3


def test_pipelines_ask_for_bigrams_on_request_and_older_checkpoints_load_as_words_only(tmp_path):
    assert "ngrams" not in load_config("text_csv", ["data.root=x.csv"]).student.options()  # words alone
    options = load_config("text_csv", ["data.root=x.csv", "student.ngrams=2"]).student.options()
    assert options["ngrams"] == 2 and "buckets" not in options  # the model's default bucket count
    assert "ngrams" not in load_config("digits").student.options()  # image models have none
    old = build_model("fasttext", (6,), 3, vocab_size=12, width=8)  # as before: no ngrams option in its spec
    path = save_model(old, "fasttext", (6,), 3, {"vocab_size": 12, "width": 8}, tmp_path / "old.pt")
    loaded = load_model(path)
    assert loaded.ngram_bag is None and torch.equal(loaded(IDS), old.eval()(IDS))


def test_weighted_mean_starts_as_the_plain_mean_and_moves_only_through_the_word_scores():
    torch.manual_seed(0)
    plain = build_model("fasttext", (6,), 3, vocab_size=12, width=8)
    weighted = build_model("fasttext", (6,), 3, vocab_size=12, width=8, weighted=True)
    assert set(weighted.state_dict()) - set(plain.state_dict()) == {"word_score.weight"}
    weighted.load_state_dict({**plain.state_dict(), "word_score.weight": weighted.word_score.weight.detach()})
    assert torch.allclose(weighted(IDS), plain(IDS), atol=1e-6)  # zero scores: every word weighs the same
    with torch.no_grad():
        weighted.word_score.weight[5] = 3.0  # word 5 counts e^3 times as much as the others
    moved = weighted(IDS)
    assert not torch.allclose(moved[[0, 2]], plain(IDS)[[0, 2]])  # the rows holding word 5
    assert torch.allclose(moved[1], plain(IDS)[1], atol=1e-6)  # a text of one other word is its embedding still
    assert torch.isfinite(weighted(torch.zeros(1, 6, dtype=torch.long))).all()  # all padding: no NaN
