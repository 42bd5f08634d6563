"""Per-class evidence of the evaluation run: a confusion matrix image and scikit-learn's precision / recall / F1
table for each model, logged as artifacts of the active run."""

from __future__ import annotations

import mlflow
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], title: str):
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
    side = min(2 + 0.45 * len(classes), 16)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    if len(classes) <= 30:  # counts stay readable
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="w" if n > matrix.max() / 2 else "k")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def report_table(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, list]:
    """scikit-learn's classification report as columns: class, precision, recall, f1, support (+ averages)."""
    report = classification_report(
        y_true, y_pred, labels=range(len(classes)), target_names=classes, output_dict=True, zero_division=0
    )
    table: dict[str, list] = {"class": [], "precision": [], "recall": [], "f1": [], "support": []}
    for name, row in report.items():
        if name == "accuracy":
            continue
        table["class"].append(name)
        table["precision"].append(row["precision"])
        table["recall"].append(row["recall"])
        table["f1"].append(row["f1-score"])
        table["support"].append(int(row["support"]))
    return table


def log_class_report(role: str, y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> None:
    """`confusion/{role}.png`, `classification/{role}.json` (a table) and `.txt` (the report as printed)."""
    import matplotlib.pyplot as plt

    fig = confusion_figure(y_true, y_pred, classes, f"{role}: test split, {len(y_true)} samples")
    mlflow.log_figure(fig, f"confusion/{role}.png")
    plt.close(fig)
    mlflow.log_table(report_table(y_true, y_pred, classes), f"classification/{role}.json")
    text = classification_report(
        y_true, y_pred, labels=range(len(classes)), target_names=classes, digits=4, zero_division=0
    )
    mlflow.log_text(text, f"classification/{role}.txt")
