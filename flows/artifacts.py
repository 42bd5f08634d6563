"""What a person sees on a flow run's page: the summary, the tuning progress and the trial table."""

from __future__ import annotations

from urllib.parse import urlparse

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.local_ui import DEFAULT_MLFLOW_PORT, HOST
from pipelines.tracking.summary import (
    champion_sentence,
    choice_sentence,
    evidence_sentence,
    kd_gain_sentence,
    nothing_to_distil_sentence,
    speed_cells,
)
from pipelines.training.progress import ProgressListener


def mlflow_ui(tracking_uri: str | None) -> str | None:
    """The MLflow UI that shows this store: the tracking server itself, or for a local SQLite store the one
    `kdflow ui` serves it on; None for other stores. Never with credentials."""
    if not tracking_uri:
        return None
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        host = parsed.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{netloc}{parsed.path.rstrip('/')}"
    if parsed.scheme == "sqlite":
        return f"http://{HOST}:{DEFAULT_MLFLOW_PORT}"
    return None


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str | None:
    ui = mlflow_ui(tracking_uri)
    return None if ui is None else f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"


def run_link(tracking_uri: str | None, experiment_id: str, run_id: str) -> str:
    """A link into the MLflow UI that shows the store, else the bare run id to paste into one."""
    url = run_url(tracking_uri, experiment_id, run_id)
    return f"`{run_id}`" if url is None else f"[{run_id[:8]}]({url})"


def summary_markdown(summary: dict, tracking_uri: str | None) -> str:
    """Teacher / baseline / student side by side, the best hyper-parameters and the MLflow runs."""
    ml, exp = summary["mlflow"], summary["mlflow"]["experiment_id"]
    lines = [
        f"# kdflow `{summary['pipeline']}`",
        "",
        "| model | arch | test accuracy | parameters | size MB | latency ms (p95) | samples/s @256 | MLflow run |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for role, m in summary["models"].items():
        lines.append(
            f"| {role} | {m['arch']} | {m['test_acc']:.2%} | {m['parameters']:,} | {' | '.join(speed_cells(m))} | "
            f"{run_link(tracking_uri, exp, m['mlflow_run_id'])} |"
        )
    t = summary["trials"]
    best_val = "n/a" if summary["best_val_acc"] is None else f"{summary['best_val_acc']:.4f}"
    lines += [
        "",
        f"**{upper_first(evidence_sentence(summary))}.**",
        "",
        f"**{kd_gain_sentence(summary)}.**",
        "",
        *([f"**{note}.**", ""] if (note := nothing_to_distil_sentence(summary)) else []),
        (
            f"**Best hyper-parameters** (validation accuracy {best_val}; {t['complete']} complete, "
            f"{t['pruned']} pruned of {t['requested']} trials):"
        ),
        "",
        "| parameter | value |",
        "|---|---:|",
        *(f"| {k} | {v:.4g} |" for k, v in summary["best_params"].items()),
        "",
        *([f"**Chosen {choice_sentence(summary)}.**", ""] if choice_sentence(summary) else []),
        f"**{champion_sentence(summary)}**",
        "",
        f"**MLflow** experiment `{exp}`, parent run {run_link(tracking_uri, exp, ml['parent_run_id'])}, "
        f"evaluation run {run_link(tracking_uri, exp, ml['evaluation_run_id'])}; tracking store `{tracking_uri}`"
        + ("; links open the MLflow UI of `kdflow ui`." if tracking_uri and tracking_uri.startswith("sqlite") else "."),
        "",
        f"**Optuna** study `{summary['optuna']['study_name']}` in `{summary['optuna']['storage']}`.",
    ]
    if summary.get("teacher_reused"):
        lines += ["", "The teacher was **reused** from an earlier run with the same data and teacher config."]
    return "\n".join(lines) + "\n"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def publish_summary(summary: dict, tracking_uri: str | None) -> None:
    create_markdown_artifact(
        summary_markdown(summary, tracking_uri),
        key=f"kdflow-{artifact_key(summary['pipeline'])}-summary",
        description="Teacher, baseline and student on the test split",
    )


def publish_trials(pipeline: str, rows: list[dict]) -> None:
    if rows:
        create_table_artifact(
            rows, key=f"kdflow-{artifact_key(pipeline)}-trials", description="Optuna trials of this study"
        )


def artifact_key(name: str) -> str:
    # Prefect keys allow lowercase letters, digits and dashes only.
    return "".join(c if c.isalnum() else "-" for c in name.lower())


class TrialProgressArtifact(ProgressListener):
    """A progress artifact that reads "trial k of N, best val/acc so far" during tuning."""

    def __init__(self) -> None:
        self.artifact_id = None

    def trials(self, done: int, total: int, best: float | None) -> None:
        percent = 100.0 * done / total if total else 100.0
        text = f"trial {done} of {total}" + ("" if best is None else f", best val/acc so far {best:.4f}")
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, description=text)
        else:
            update_progress_artifact(self.artifact_id, percent, description=text)
