"""Tokeniser and vocabulary: lower-cased words, train-only counts, <pad>=0, <unk>=1, truncation."""

import json

import torch

from kdcore.text.tokenizer import PAD_ID, UNK_ID, Tokenizer, lengths_of, words


def test_words_are_lower_cased_without_markup():
    assert words("It's GREAT!<br /><br />Really, a 10/10 film?") == [
        "it's",
        "great",
        "!",
        "really",
        "a",
        "10",
        "10",
        "film",
        "?",
    ]
    assert words("Keep Case", lowercase=False) == ["Keep", "Case"]


def test_vocabulary_counts_train_texts_only_with_size_and_min_freq():
    train = ["the cat sat", "the cat ran", "the dog ran", "a bird"]
    tok = Tokenizer.fit(train, vocab_size=5, min_freq=2, max_len=10)
    # counts: the 3, cat 2, ran 2, sat/dog/a/bird 1 -> ranked by count, ties alphabetical, cut at 5 - 2
    assert tok.tokens == ("<pad>", "<unk>", "the", "cat", "ran")
    assert len(tok) == 5 and tok.tokens[PAD_ID] == "<pad>" and tok.tokens[UNK_ID] == "<unk>"
    assert Tokenizer.fit(train, vocab_size=100, min_freq=1, max_len=10).tokens[2:] == (
        "the",
        "cat",
        "ran",
        "a",
        "bird",
        "dog",
        "sat",
    )
    assert "zebra" not in Tokenizer.fit(train, 100, 1, 10).tokens  # a word only seen outside train


def test_encode_pads_truncates_and_maps_unknown_words():
    tok = Tokenizer.fit(["good film", "bad film", "film"], vocab_size=10, min_freq=1, max_len=3)
    film, bad, good = tok.ids("film")[0], tok.ids("bad")[0], tok.ids("good")[0]
    ids, lengths = tok.encode(["Good FILM", "bad awful film film film", "!", "zebra"])
    assert ids.dtype == torch.long and ids.shape == (4, 3)
    assert ids.tolist() == [
        [good, film, PAD_ID],
        [bad, UNK_ID, film],
        [UNK_ID, PAD_ID, PAD_ID],
        [UNK_ID, PAD_ID, PAD_ID],
    ]
    assert lengths.tolist() == [2, 3, 1, 1]  # cut at max_len=3; "!" is out of vocabulary; never empty
    assert torch.equal(lengths_of(ids), lengths)
    assert tok.encode(["film"], length=5)[0].tolist() == [[film, 0, 0, 0, 0]]
    assert tok.decode(ids[1]) == "bad film"


def test_state_is_plain_json_and_loads_with_weights_only(tmp_path):
    tok = Tokenizer.fit(["a b c", "a b", "a"], vocab_size=10, min_freq=1, max_len=7, lowercase=False)
    state = json.loads(json.dumps(tok.state_dict()))
    torch.save(state, tmp_path / "tok.pt")
    again = Tokenizer.from_state_dict(torch.load(tmp_path / "tok.pt", weights_only=True))
    assert again == tok and again.ids("a c B") == tok.ids("a c B")
