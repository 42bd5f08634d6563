"""benchmarks/text_distill.py's transfer set: unlabelled texts join the KD student's train split with the teacher's
soft targets and its top class, and the student's own vocabulary may count their words."""

import torch

from benchmarks.text_distill import with_transfer, with_vocabulary
from kdcore.text.datasets import load_text_folder
from kdcore.text.settings import TextSettings
from kdcore.text.tokenizer import Tokenizer


def folder(tmp_path):
    for label, words in {"a": "apple apricot", "b": "banana blueberry"}.items():
        (tmp_path / label).mkdir()
        for i in range(10):
            (tmp_path / label / f"{i}.txt").write_text(f"{words} {words} fruit {i}")
    return tmp_path


def test_transfer_texts_join_the_train_split_with_the_teachers_targets(tmp_path):
    settings = TextSettings(max_len=8)
    bundle = load_text_folder(str(folder(tmp_path)), 0.2, 0.2, 0, text=settings)
    logits = torch.zeros(len(bundle.train), 2)
    transfer_texts = ["banana cherry cherry", "apple cherry"]
    transfer = Tokenizer.from_state_dict(bundle.tokenizer).encode(transfer_texts, bundle.input_shape[0])[0]
    transfer_logits = torch.tensor([[-3.0, -0.1], [-0.1, -3.0]])
    grown, targets = with_transfer(bundle, logits, transfer, transfer_logits)
    assert len(grown.train) == len(bundle.train) + 2 and len(targets) == len(grown.train)
    assert grown.train.y[-2:].tolist() == [1, 0]  # the teacher's top class
    assert torch.equal(targets[-2:], transfer_logits) and torch.equal(grown.val.x, bundle.val.x)

    assert "cherry" not in bundle.tokenizer["tokens"]  # twice in the transfer texts, never in train
    student_bundle, tokenizer = with_vocabulary(bundle, transfer_texts, settings)
    assert "cherry" in tokenizer.tokens and student_bundle.tokenizer == tokenizer.state_dict()
    assert torch.equal(student_bundle.test.y, bundle.test.y) and student_bundle.test.texts == bundle.test.texts
