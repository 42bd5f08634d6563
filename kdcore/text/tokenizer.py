"""Words to token ids: lower-cased regex words, a vocabulary counted on the train split only."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_MARKUP = re.compile(r"<br\s*/?>|<[^>]{1,20}>")  # IMDB reviews carry <br /> line breaks
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[!?]")  # words (with inner apostrophes), ! and ?


def words(text: str, lowercase: bool = True) -> list[str]:
    """`"It's GREAT!<br />Really."` -> `["it's", "great", "!", "really"]`."""
    text = _MARKUP.sub(" ", text)
    return _WORD.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class Tokenizer:
    """A fixed vocabulary (`tokens[i]` has id i; 0 is padding, 1 out-of-vocabulary) and a length cap."""

    tokens: tuple[str, ...]
    max_len: int
    lowercase: bool = True

    def __post_init__(self):
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary starts with {PAD!r} and {UNK!r}")
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def fit(
        cls, texts: Iterable[str], vocab_size: int, min_freq: int, max_len: int, lowercase: bool = True
    ) -> Tokenizer:
        """The `vocab_size - 2` most frequent words seen at least `min_freq` times (ties: alphabetical)."""
        if vocab_size < 3:
            raise ValueError("vocab_size must leave room for <pad>, <unk> and one word")
        counts = Counter(w for text in texts for w in words(text, lowercase))
        ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls((PAD, UNK, *ranked[: vocab_size - 2]), max_len, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """Token ids of the first `max_len` words; a text without words becomes one <unk>."""
        got = [self._ids.get(w, UNK_ID) for w in words(text, self.lowercase)[: self.max_len]]
        return got or [UNK_ID]

    def encode(self, texts: list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, lengths): ids is (N, L) long, right-padded with PAD_ID; L = `length` or the longest text."""
        rows = [self.ids(t) for t in texts]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        width = length if length is not None else max(1, int(lengths.max()) if len(rows) else 1)
        ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row[:width], dtype=torch.long)
        return ids, lengths.clamp(max=width)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Words of one row, padding and out-of-vocabulary ids left out (for readable examples)."""
        return " ".join(self.tokens[i] for i in (ids.tolist() if torch.is_tensor(ids) else ids) if i > UNK_ID)

    def state_dict(self) -> dict:
        """Plain strings and ints: JSON-serialisable and loadable with torch.load(weights_only=True)."""
        return {"tokens": list(self.tokens), "max_len": self.max_len, "lowercase": self.lowercase}

    @classmethod
    def from_state_dict(cls, state: dict) -> Tokenizer:
        return cls(tuple(state["tokens"]), int(state["max_len"]), bool(state["lowercase"]))


def lengths_of(ids: torch.Tensor) -> torch.Tensor:
    """Lengths of right-padded rows: padding (id 0) only ever follows the last real token."""
    return (ids != PAD_ID).sum(dim=1)
