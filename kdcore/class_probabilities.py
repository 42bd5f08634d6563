"""A served classifier's answer: the class name, its probability and every class's probability, as columns."""

from __future__ import annotations

import torch


def probability_column(name: str) -> str:
    return f"prob_{name}"


def class_probabilities(logits: torch.Tensor, classes: list[str]) -> dict[str, list]:
    """Flat columns (`class`, `probability`, `prob_<name>`...): one JSON record or CSV row per input."""
    probs = torch.softmax(logits.float(), dim=1)
    top, index = probs.max(dim=1)
    columns: dict[str, list] = {"class": [classes[i] for i in index.tolist()], "probability": top.tolist()}
    for i, name in enumerate(classes):
        columns[probability_column(name)] = probs[:, i].tolist()
    return columns
