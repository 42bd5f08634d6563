"""The retraining decision: a retrained version of a pipeline's student replaces its champion only if it did not get
worse on the original test split nor on average."""

from __future__ import annotations


def lifecycle_decision(
    original_acc: float,
    lineage_best_original_acc: float,
    avg_acc: float,
    champion_avg_acc: float,
    champion_version: str,
    tolerance: float,
) -> tuple[bool, str]:
    """Whether a retrained version of a pipeline's student replaces its champion, and why.

    Two comparisons, both within `tolerance`: on the pipeline's original test split, against the best accuracy
    any version of the lineage reached there (so small losses cannot add up over retrainings); averaged over
    every test part seen, against the champion re-scored now on the same parts. Pure: numbers in, decision out.
    """
    original_floor = lineage_best_original_acc - tolerance
    avg_floor = champion_avg_acc - tolerance
    verdict = (
        f"original test split {original_acc:.4f} vs lineage best {lineage_best_original_acc:.4f} "
        f"(floor {original_floor:.4f}); average over all test parts {avg_acc:.4f} vs champion "
        f"v{champion_version}'s {champion_avg_acc:.4f} (floor {avg_floor:.4f}); tolerance {tolerance:g}"
    )
    failed = [
        what
        for what, ok in (("original test split", original_acc >= original_floor), ("average", avg_acc >= avg_floor))
        if not ok
    ]
    if failed:
        return False, f"kept champion v{champion_version} (below the floor on {' and '.join(failed)}): {verdict}"
    return True, f"promoted: {verdict}"
