"""Text inputs of one width across a lifecycle: the pipeline pads its splits to their longest text, batches to the
vocabulary's max_len. Retraining pads everything to max_len, so the DER++ buffer carried from version to version,
the original splits and every batch stack together (models read lengths from the padding, id 0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.text.tokenizer import PAD_ID


def to_width(split: Split, width: int) -> Split:
    """Token ids right-padded (or cut) to `width` columns."""
    have = split.x.shape[1]
    if have == width:
        return split
    x = F.pad(split.x, (0, width - have), value=PAD_ID) if have < width else split.x[:, :width]
    return Split(x.to(torch.long), split.y)
