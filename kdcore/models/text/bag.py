"""fastText-style student (Joulin et al., 2016/2017): the mean of word embeddings, plus the mean of hashed word
n-gram embeddings, then a linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from kdcore.models.registry import register_model
from kdcore.models.text.ngrams import hashed_ngrams
from kdcore.models.text.token_input import require_vocab, trimmed
from kdcore.text.tokenizer import PAD_ID

# Joulin et al. use 10M buckets. On the CPU the table's dense AdamW update sets the pace: on the man-page corpus
# (benchmarks/README.md) 100k buckets trained 17x slower than words alone, 20k 5x, at the same accuracy.
BUCKETS = 20_000


class EmbeddingBagClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        width: int,
        ngrams: int = 1,
        buckets: int = BUCKETS,
        weighted: bool = False,
    ):
        super().__init__()
        self.ngrams, self.buckets = ngrams, buckets
        self.bag = nn.EmbeddingBag(vocab_size, width, mode="mean", padding_idx=PAD_ID)  # padding left out of the mean
        # A learned score per word: the mean becomes a softmax-weighted one, so that a long text's few telling words
        # are not drowned by its common ones (what TF-IDF's idf does). Zero at the start: exactly the plain mean.
        self.word_score = nn.Embedding(vocab_size, 1, padding_idx=PAD_ID) if weighted else None
        if self.word_score is not None:
            nn.init.zeros_(self.word_score.weight)
        # Its own mean, added: with this table at zero the model is exactly the words-only one.
        self.ngram_bag = nn.EmbeddingBag(buckets + 1, width, mode="mean", padding_idx=PAD_ID) if ngrams > 1 else None
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, _ = trimmed(ids)
        features = self.bag(ids) if self.word_score is None else self.weighted_mean(ids)
        if self.ngram_bag is not None:
            features = features + self.ngram_bag(hashed_ngrams(ids, self.ngrams, self.buckets))
        return self.classifier(features)

    def weighted_mean(self, ids: torch.Tensor) -> torch.Tensor:
        scores = self.word_score(ids).squeeze(-1).masked_fill(ids == PAD_ID, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # a row of padding alone: all weights 0
        return (self.bag.weight[ids] * weights.unsqueeze(-1)).sum(1)


@register_model(
    "fasttext", "bag of word (and hashed n-gram) embeddings -> mean -> classifier (Joulin et al. 2017)", "text"
)
def fasttext(
    input_shape,
    num_classes,
    vocab_size: int | None = None,
    width: int = 64,
    ngrams: int = 1,
    buckets: int = BUCKETS,
    weighted: bool = False,
    **_,
) -> nn.Module:
    """`ngrams` 1 (words alone) by default, also what checkpoints written before n-grams existed hold.
    `ngrams=2` adds hashed bigrams (student.ngrams in a pipeline config). `weighted`: a learned score per word
    weights the mean (softmax over the text's words)."""
    if ngrams < 1 or buckets < 1:
        raise ValueError(f"fasttext: ngrams ({ngrams}) and buckets ({buckets}) must be at least 1")
    return EmbeddingBagClassifier(require_vocab("fasttext", vocab_size), num_classes, width, ngrams, buckets, weighted)
