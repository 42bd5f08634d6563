"""A registered version's description: its model card, in Markdown (the MLflow UI renders it on the version's page).

What it was trained on, what it was distilled from and how, how it scores against its teacher and the labels-only
baseline, how much smaller and faster it is, whether its ONNX export matches, and why it is (not) the champion.
"""

from __future__ import annotations

from pipelines.config.schema import PipelineConfig
from pipelines.registry.gate import Decision
from pipelines.registry.onnx_export import OnnxExport
from pipelines.results import Evaluation, PreparedData, TuneResult
from pipelines.tracking.summary import Evidence


def model_card(
    cfg: PipelineConfig,
    data: PreparedData,
    classes: list[str],
    role: str,
    choice: str,
    archs: dict[str, str],
    tuned: TuneResult,
    ev: Evaluation,
    export: OnnxExport,
    decision: Decision,
) -> str:
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")
    best = ", ".join(f"{k}={v:.4g}" for k, v in tuned.best_params.items()) or "the configured values"
    lines = [
        f"# {cfg.name}: {archs[role]} {'distilled from' if role == 'student' else 'trained beside'} {cfg.teacher.arch}",
        "",
        f"**Registered:** the {'KD student' if role == 'student' else 'labels-only baseline'} ({choice}).",
        "",
        f"**Data:** `{cfg.data.dataset}`, digest `{data.digest}`, splits "
        + ", ".join(f"{k} {v:,}" for k, v in data.sizes.items())
        + f"; test digest `{ev.eval_digest}`.",
        "",
        f"**Classes ({len(classes)}):** {shown}.",
        "",
        f"**KD method:** {tuned.method}; best hyper-parameters {best} "
        f"({tuned.complete} complete, {tuned.pruned} pruned Optuna trials).",
        "",
        "| model | arch | parameters | size MB | test accuracy | latency ms (median / p95) | samples/s @256 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in ("teacher", "baseline", "student"):
        if r not in ev.test_acc:
            continue
        t, size, params = ev.timing.get(r), ev.size_mb.get(r), ev.parameters.get(r)
        speed = (
            "- | -"
            if t is None
            else f"{t['latency_ms_median']:.3f} / {t['latency_ms_p95']:.3f} | {t['throughput']:,.0f}"
        )
        lines.append(
            f"| {r}{' (this version)' if r == role else ''} | {archs[r]} | "
            f"{'-' if params is None else f'{params:,}'} | "
            f"{'-' if size is None else f'{size:.3f}'} | {ev.test_acc[r]:.2%} | {speed} |"
        )
    lines.append("")
    if {"student", "baseline"} <= set(ev.test_acc):
        gain = 100 * (ev.test_acc["student"] - ev.test_acc["baseline"])
        lines += [f"**KD's gain** (student minus baseline, test): {gain:+.2f} points.", ""]
    if {"teacher", "student"} <= set(ev.size_mb):
        e = Evidence.of(ev)
        speed = (
            "timing off (evaluate.timing=false)"
            if e.latency_ratio is None
            else f"{e.latency_ratio:.1f}x faster per sample and {e.throughput_ratio:.1f}x the throughput at batch 256 "
            f"on {e.device_name}"
        )
        lines += [
            f"**Student vs teacher:** {e.size_ratio:.1f}x smaller on disk, {speed}; "
            f"{e.acc_points:+.2f} points of test accuracy (teacher minus student).",
            "",
        ]
    lines += [onnx_line(export), "", promotion_line(decision), ""]
    return "\n".join(lines)


def retrain_card(
    pipeline: str,
    base_version: str,
    method: str,
    data_digest: str,
    classes: list[str],
    parts: list[str],
    accs: dict[str, float],
    champion_accs: dict[str, float],
    scores: dict[str, float],
    export: OnnxExport,
    decision: Decision,
) -> str:
    """The card of a version made by `kdflow retrain`: what it learned since its base version, and how it scores on
    every test part against that champion re-scored now."""
    lines = [
        f"# {pipeline}: retrained from v{base_version} ({method})",
        "",
        f"**Data learned:** the pipeline's original data (digest `{data_digest}`) and the batches "
        f"{', '.join(parts[1:])}.",
        "",
        f"**Classes ({len(classes)}):** {', '.join(classes[:20])}{', ...' if len(classes) > 20 else ''}.",
        "",
        f"| test part | this version | v{base_version} re-scored now |",
        "|---|---:|---:|",
        *(f"| {part} | {accs[part]:.2%} | {champion_accs[part]:.2%} |" for part in parts),
        "",
        f"**Lifelong:** average accuracy {scores['avg_acc']:.2%}, forgetting {scores['forgetting']:.2%}.",
        "",
        onnx_line(export),
        "",
        promotion_line(decision),
        "",
    ]
    return "\n".join(lines)


def onnx_line(export: OnnxExport) -> str:
    if export.error is not None:
        return f"**ONNX:** not exported: {export.error}."
    return (
        f"**ONNX:** `onnx/model.onnx` in the version's run ({export.exporter} exporter; preprocessing in "
        f"`onnx/preprocessing.json`); parity {export.tags()['kdflow.onnx.parity']}."
    )


def promotion_line(decision: Decision) -> str:
    state = "**champion**" if decision.promote else "not champion"
    return f"**Promotion:** v{decision.version} is {state}: {decision.reason}."
