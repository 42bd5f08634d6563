"""Word n-grams as hashed bucket ids (Joulin et al. 2017): a fixed hash of the token ids, the same in every process.

Not Python's hash() (salted per process for strings; its tuple hash changed between versions): a bucket must mean the
same n-gram wherever a checkpoint is loaded. Every step stays below 2**62: int64 arithmetic never overflows.
"""

from __future__ import annotations

import torch

from kdcore.text.tokenizer import PAD_ID

PRIME = 2_147_483_647  # 2**31 - 1: hashes stay below it between steps
MULTIPLIER = 116_049_371  # fastText's n-gram hash multiplier


def hashed_ngrams(ids: torch.Tensor, n: int, buckets: int) -> torch.Tensor:
    """(B, L) token ids -> (B, (n-1)·L) bucket ids in 1..buckets of every 2..n-gram; 0 (padding) where an n-gram
    would reach into the padding or past the text's end."""
    out = []
    for size in range(2, n + 1):
        if ids.shape[1] < size:
            continue
        windows = ids.unfold(1, size, 1)  # (B, L - size + 1, size): every contiguous run of `size` tokens
        h = torch.full(windows.shape[:2], size, dtype=torch.long, device=ids.device)  # bigrams, trigrams apart
        for k in range(size):
            h = (h * MULTIPLIER + windows[..., k]) % PRIME
        valid = (windows != PAD_ID).all(-1)
        out.append(torch.where(valid, h % buckets + 1, PAD_ID))
    if not out:
        return ids.new_zeros((ids.shape[0], 1))  # no n-gram fits: an empty bag (zeros) for every row
    return torch.cat(out, dim=1)
