"""Is KD's gain real? The paired t-interval of per-seed accuracy differences (same seed = same split and init).

Pairing by seed removes the split-to-split spread both models share, so a gain smaller than either model's
spread between seeds can still be told apart from zero. Student's t with n - 1 degrees of freedom: the right
interval for a handful of seeds (5 seeds: t = 2.776, not 1.96).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a - b over paired seeds and its two-sided confidence interval, in the inputs' units."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return bool(self.low > 0 or self.high < 0)

    def sentence(self) -> str:
        verdict = (
            "no significant gain" if not self.significant else "significant " + ("gain" if self.mean > 0 else "loss")
        )
        return (
            f"{self.mean:+.2f} points, {self.confidence:.0%} interval [{self.low:+.2f}, {self.high:+.2f}] "
            f"over {self.n} seeds: {verdict}"
        )

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "significant": self.significant}


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> PairedDifference:
    """a[i] and b[i] come from the same seed. Needs at least 2 pairs."""
    from scipy.stats import t  # scikit-learn's own dependency

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired_difference needs two equal-length lists of at least 2 values, got {len(a)}, {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True)]
    n, mean = len(d), statistics.fmean(d)
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(d) / math.sqrt(n)
    return PairedDifference(mean=mean, low=mean - half, high=mean + half, n=n, confidence=confidence)
