"""What every text model does first: check it has a vocabulary, cut the batch's shared padding."""

from __future__ import annotations

import torch

from kdcore.text.tokenizer import PAD_ID, lengths_of


def require_vocab(arch: str, vocab_size: int | None) -> int:
    if not vocab_size:
        raise ValueError(f"model {arch!r} reads token ids: train it on a text dataset (imdb, ag_news, text_csv, ...)")
    return int(vocab_size)


def trimmed(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids without the padding columns every row has, lengths): padding is never computed on."""
    lengths = lengths_of(ids).clamp_min(1)
    return ids[:, : int(lengths.max())], lengths


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    return ids == PAD_ID
