"""What a text loader needs beyond root and split fractions: tokenisation and record checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextSettings:
    max_len: int = 256  # tokens kept per text (the rest is cut)
    vocab_size: int = 20_000  # including <pad> and <unk>
    min_freq: int = 2  # a word seen fewer times in the train split is <unk>
    lowercase: bool = True
    text_column: str = "text"  # CSV column / JSON key holding the text
    label_column: str = "label"  # CSV column / JSON key holding the label
    labels: tuple[str, ...] | None = None  # the label set; None: the labels seen in the train split
    strict: bool = True  # a bad record stops loading; False skips it and reports it
