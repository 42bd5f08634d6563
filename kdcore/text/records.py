"""Raw labelled texts as read from files, and the rule for records that cannot be used."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kdcore.data.errors import DataError

log = logging.getLogger("kdflow")
SHOWN = 20  # skipped records reported one by one; past that only counted


@dataclass
class LabelledTexts:
    """Texts and their labels (as written in the source), in reading order."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, text: str, label: str) -> None:
        self.texts.append(text)
        self.labels.append(label)

    def __len__(self) -> int:
        return len(self.texts)


class RecordCheck:
    """Checks each record; a bad one raises DataError when strict, else it is skipped and reported."""

    def __init__(self, strict: bool, labels: set[str] | None = None):
        self.strict, self.labels, self.skipped = strict, labels, 0

    def bad(self, where: str, reason: str) -> None:
        if self.strict:
            raise DataError(
                f"{where}: {reason}; fix or remove that record, or set data.strict=false to skip bad records"
            )
        self.skipped += 1
        if self.skipped <= SHOWN:
            log.warning("data: skipped %s: %s", where, reason)

    def accept(self, where: str, text: object, label: object, into: LabelledTexts) -> None:
        """Add (text, label) to `into` unless it is empty, unlabelled, off the label set or undecodable."""
        if not isinstance(text, str):
            return self.bad(where, "missing text" if text is None else f"text is a {type(text).__name__}, not a string")
        if undecodable(text):
            return self.bad(where, "undecodable bytes (the file is not UTF-8)")
        if not text.strip():
            return self.bad(where, "empty text")
        if label is None or (isinstance(label, str) and not label.strip()):
            return self.bad(where, "missing label")
        label = str(label).strip()
        if undecodable(label):
            return self.bad(where, "undecodable bytes in the label (the file is not UTF-8)")
        if self.labels is not None and label not in self.labels:
            return self.bad(where, f"label {label!r} is not one of {sorted(self.labels)}")
        into.add(text, label)

    def finish(self, source: str) -> None:
        if self.skipped:
            log.warning("data: %s: skipped %d bad record(s) (data.strict=false)", source, self.skipped)


def undecodable(text: str) -> bool:
    """Bytes that were not UTF-8, kept as lone surrogates by errors='surrogateescape'."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
