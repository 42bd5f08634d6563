"""The accuracy matrix as a heatmap figure (an MLflow artifact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_heatmap(matrix: list[list[float]], batch_ids: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    a = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * a.shape[1], 1.0 + 0.6 * a.shape[0]))
    ax.imshow(np.ma.masked_invalid(a), vmin=0, vmax=1, cmap="viridis")
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not np.isnan(a[i, j]):
                ax.text(
                    j, i, f"{a[i, j]:.2f}", ha="center", va="center", color="w" if a[i, j] < 0.6 else "k", fontsize=8
                )
    short = [b.split("-")[0] for b in batch_ids]
    ax.set_xticks(range(a.shape[1]), short[: a.shape[1]], rotation=90)
    ax.set_yticks(range(a.shape[0]), short[: a.shape[0]])
    ax.set_xlabel("evaluated on batch")
    ax.set_ylabel("after learning batch")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
