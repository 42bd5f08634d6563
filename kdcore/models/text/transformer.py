"""A small Transformer encoder teacher: learned positions, padding masked, mean over real tokens."""

from __future__ import annotations

import torch
import torch.nn as nn

from kdcore.models.registry import register_model
from kdcore.models.text.token_input import padding_mask, require_vocab, trimmed
from kdcore.text.tokenizer import PAD_ID


class TransformerClassifier(nn.Module):
    def __init__(
        self, vocab_size: int, num_classes: int, width: int, heads: int, layers: int, max_positions: int, dropout: float
    ):
        super().__init__()
        self.max_positions = max_positions
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=PAD_ID)
        self.position = nn.Embedding(max_positions, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids, _ = trimmed(ids[:, : self.max_positions])  # longer texts keep their first max_positions tokens
        pad = padding_mask(ids)
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.encoder(self.embedding(ids) + self.position(positions), src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (self.norm(h) * keep).sum(1) / keep.sum(1).clamp_min(1)
        return self.classifier(pooled)


@register_model("transformer", "token + position embeddings -> pre-norm encoder layers -> masked mean", "text")
def transformer(
    input_shape,
    num_classes,
    vocab_size: int | None = None,
    width: int = 128,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.1,
    **_,
) -> nn.Module:
    """Token + position embeddings -> `layers` pre-norm encoder layers -> masked mean -> classifier."""
    if width % heads:
        raise ValueError(f"transformer width {width} must be a multiple of heads={heads}")
    return TransformerClassifier(
        require_vocab("transformer", vocab_size), num_classes, width, heads, layers, int(input_shape[0]), dropout
    )
