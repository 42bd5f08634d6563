"""fastText-style student (Joulin et al., 2016): the mean of word embeddings, then a linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from kdcore.models.registry import register_model
from kdcore.models.text.token_input import require_vocab, trimmed
from kdcore.text.tokenizer import PAD_ID


class EmbeddingBagClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, width: int):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, width, mode="mean", padding_idx=PAD_ID)  # padding left out of the mean
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, _ = trimmed(ids)
        return self.classifier(self.bag(ids))


@register_model("fasttext", "bag of embeddings -> mean -> classifier (Joulin et al. 2017); the fast student", "text")
def fasttext(input_shape, num_classes, vocab_size: int | None = None, width: int = 64, **_) -> nn.Module:
    return EmbeddingBagClassifier(require_vocab("fasttext", vocab_size), num_classes, width)
