"""The one shape every dataset takes: three in-memory tensor splits plus what models need to know.

Image datasets keep their pixels as stored (uint8); `view` turns them into model inputs
(normalised, and augmented in training). Everything here loads with torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kdcore.data.view import InputView


@dataclass(frozen=True)
class Split:
    """Inputs and integer labels of one split, held as tensors."""

    x: torch.Tensor
    y: torch.Tensor
    texts: list[str] | None = None  # text data: the raw texts x encodes, for a teacher with its own tokenizer

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device), self.texts)


@dataclass(frozen=True)
class DataBundle:
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    name: str
    classes: list[str] = field(default_factory=list)
    tokenizer: dict | None = None  # text data: the vocabulary fitted on train (kdcore.text.tokenizer)
    view: InputView = field(default_factory=InputView)

    def model_options(self) -> dict:
        """What a model needs to know about the data beyond input shape and classes."""
        return {} if self.tokenizer is None else {"vocab_size": len(self.tokenizer["tokens"])}

    def inputs(self, name: str) -> Split:
        """Split `name` as model inputs, never augmented (evaluation, logits, examples)."""
        split = self.splits()[name]
        return Split(self.view.normalise(split.x), split.y)

    @property
    def digest(self) -> str:
        """Content hash of all three splits: the cache key of everything trained on them."""
        h = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for t in (split.x, split.y):
                t = t.contiguous().cpu()
                h.update(str((t.dtype, tuple(t.shape))).encode())
                h.update(t.numpy().tobytes())
            if split.texts is not None:  # a teacher with its own tokenizer reads these, not the ids
                h.update(json.dumps(split.texts).encode())
        if self.tokenizer is not None:  # the same ids mean other words under another vocabulary
            h.update(json.dumps(self.tokenizer, sort_keys=True).encode())
        h.update(repr(sorted(self.view.state_dict().items())).encode())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict:
        """Plain tensors and primitives only, so it loads with torch.load(weights_only=True)."""
        return {
            "splits": {n: split_state(s) for n, s in self.splits().items()},
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "name": self.name,
            "classes": list(self.classes),
            "view": self.view.state_dict(),
            **({} if self.tokenizer is None else {"tokenizer": self.tokenizer}),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> DataBundle:
        splits = {n: Split(s["x"], s["y"], s.get("texts")) for n, s in state["splits"].items()}
        return cls(
            train=splits["train"],
            val=splits["val"],
            test=splits["test"],
            num_classes=state["num_classes"],
            input_shape=tuple(state["input_shape"]),
            name=state["name"],
            classes=list(state["classes"]),
            view=InputView.from_state_dict(state["view"]) if "view" in state else InputView(),
            tokenizer=state.get("tokenizer"),
        )

    @classmethod
    def load(cls, path: str | Path) -> DataBundle:
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_state(split: Split) -> dict:
    return {"x": split.x, "y": split.y, **({} if split.texts is None else {"texts": list(split.texts)})}
