"""The promotion gate: a retrained model replaces the champion only if it did not get worse overall."""

from __future__ import annotations


def promotion_decision(
    avg_acc: float, champion_avg_acc: float | None, champion_version: str | None, tolerance: float
) -> tuple[bool, str]:
    if champion_avg_acc is None:
        return True, "no champion yet"
    floor = champion_avg_acc - tolerance
    verdict = (
        f"average accuracy {avg_acc:.4f} over all batches seen vs champion v{champion_version}'s "
        f"{champion_avg_acc:.4f} (tolerance {tolerance:g}, floor {floor:.4f})"
    )
    if avg_acc >= floor:
        return True, f"promoted: {verdict}"
    return False, f"kept champion: {verdict}"
