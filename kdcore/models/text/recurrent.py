"""LSTM classifiers on packed sequences: the BiLSTM teacher and the one-layer LSTM student."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from kdcore.models.registry import register_model
from kdcore.models.text.token_input import require_vocab, trimmed
from kdcore.text.tokenizer import PAD_ID


class LSTMClassifier(nn.Module):
    """Embedding -> (Bi)LSTM over the real tokens only -> last hidden state(s) -> linear."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        dropout: float,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            embed,
            hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, lengths = trimmed(ids)
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h: (layers * directions, batch, hidden), in the input's order
        last = torch.cat([h[-2], h[-1]], dim=1) if self.lstm.bidirectional else h[-1]
        return self.classifier(self.dropout(last))


@register_model("bilstm", "embedding -> bidirectional LSTM -> classifier; the classic text teacher", "text")
def bilstm(
    input_shape,
    num_classes,
    vocab_size: int | None = None,
    width: int = 128,
    embed: int = 128,
    layers: int = 1,
    dropout: float = 0.3,
    **_,
) -> nn.Module:
    """The classic IMDB teacher: embedding -> bidirectional LSTM -> classifier."""
    return LSTMClassifier(require_vocab("bilstm", vocab_size), num_classes, embed, width, layers, True, dropout)


@register_model("lstm", "embedding -> one-direction LSTM -> classifier; a small recurrent student", "text")
def lstm(
    input_shape, num_classes, vocab_size: int | None = None, width: int = 64, embed: int = 64, dropout: float = 0.2, **_
) -> nn.Module:
    """A one-layer, one-direction LSTM student."""
    return LSTMClassifier(require_vocab("lstm", vocab_size), num_classes, embed, width, 1, False, dropout)
