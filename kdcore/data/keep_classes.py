"""data.classes: a dataset cut down to the listed classes (a pipeline first run on a subset; later batches may
bring the rest, and the head widens to them, or scores them from the start with data.head_classes=all)."""

from __future__ import annotations

from dataclasses import replace

import torch

from kdcore.data.bundle import DataBundle, Split
from kdcore.data.errors import DataError


def keep_classes(bundle: DataBundle, names: list[str], all_in_head: bool = False) -> DataBundle:
    """Only the samples of the classes `names`, relabelled 0..k-1 in the dataset's own class order; with
    `all_in_head`, their labels, class list and class count stay the dataset's (a model built for the bundle
    then has an output for every class, the others untrained until their samples arrive)."""
    known = list(bundle.classes) or [str(i) for i in range(bundle.num_classes)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"data.classes names {unknown}, which {bundle.name} does not have; pick from {known}")
    kept = [i for i, n in enumerate(known) if n in names]
    relabel = torch.full((len(known),), -1, dtype=torch.long)
    relabel[kept] = torch.tensor(kept) if all_in_head else torch.arange(len(kept))

    def cut(split: Split) -> Split:
        mask = relabel[split.y] >= 0
        return Split(split.x[mask], relabel[split.y[mask]])

    return replace(
        bundle,
        train=cut(bundle.train),
        val=cut(bundle.val),
        test=cut(bundle.test),
        num_classes=len(known) if all_in_head else len(kept),
        classes=known if all_in_head else [known[i] for i in kept],
    )
