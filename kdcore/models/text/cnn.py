"""1-D CNN student (Kim, 2014): parallel convolutions of several widths, max over the real windows."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.models.registry import register_model
from kdcore.models.text.token_input import require_vocab, trimmed
from kdcore.text.tokenizer import PAD_ID


class TextCNN(nn.Module):
    def __init__(
        self, vocab_size: int, num_classes: int, embed: int, width: int, kernels: tuple[int, ...], dropout: float
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(embed, width, k) for k in kernels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width * len(kernels), num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, lengths = trimmed(ids)
        longest = max(c.kernel_size[0] for c in self.convs)
        if ids.shape[1] < longest:  # every kernel needs at least one window
            ids = F.pad(ids, (0, longest - ids.shape[1]), value=PAD_ID)
        x = self.embedding(ids).transpose(1, 2)  # (batch, embed, length)
        pooled = []
        for conv in self.convs:
            h = conv(x)
            # Windows that start past a text's end only see padding; they never win the max, so a
            # text scores the same whatever the padding of its batch.
            starts = torch.arange(h.shape[2], device=h.device)
            last_start = (lengths - conv.kernel_size[0]).clamp_min(0)
            h = h.masked_fill(starts[None, None, :] > last_start[:, None, None], float("-inf"))
            pooled.append(F.relu(h.amax(dim=2)))
        return self.classifier(self.dropout(torch.cat(pooled, dim=1)))


@register_model("textcnn", "word embeddings -> parallel 1-D convolutions -> max-pool -> classifier (Kim 2014)", "text")
def textcnn(
    input_shape,
    num_classes,
    vocab_size: int | None = None,
    width: int = 64,
    embed: int = 64,
    kernels: tuple[int, ...] = (3, 4, 5),
    dropout: float = 0.3,
    **_,
) -> nn.Module:
    return TextCNN(require_vocab("textcnn", vocab_size), num_classes, embed, width, tuple(kernels), dropout)
