"""The `retrain-on-new-data` flow and its deployment: runs when a batch arrives (event) and on a schedule (cron)."""

from __future__ import annotations

import math
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.runtime import flow_run

from flows.stream_events import ARRIVED, RESOURCE_PREFIX
from pipelines.lifelong import RetrainConfig, RetrainResult, retrain_stream
from pipelines.stream import stream_names

DEPLOYMENT_NAME = "retrain-on-new-data"
ALL_STREAMS = "*"


@task(name="retrain-stream", cache_policy=NO_CACHE, tags=["gpu"])
def retrain_task(cfg: RetrainConfig) -> RetrainResult:
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "prefect.flow_run_url": str(flow_run.ui_url or "")}
    return retrain_stream(cfg, flow_run_tags=tags)


def result_markdown(r: RetrainResult) -> str:
    lines = [f"# Retraining of stream `{r.stream}`: {r.status}", "", f"**Decision:** {r.reason}", ""]
    if r.version:
        lines.append(
            f"Model version: v{r.version} ({'champion' if r.promoted else 'not promoted'}); "
            f"champion now v{r.champion_version}; MLflow run `{r.run_id}`"
        )
    if r.metrics:
        lines += [
            "",
            "| average accuracy | backward transfer | forgetting |",
            "|---|---|---|",
            f"| {r.metrics['avg_acc']:.4f} | {r.metrics['bwt']:.4f} | {r.metrics['forgetting']:.4f} |",
        ]
    if r.matrix:
        ids = r.learned_batches
        lines += [
            "",
            "Accuracy matrix (row: after learning batch; column: test part of batch)",
            "",
            "| after \\ on | " + " | ".join(ids) + " |",
            "|---" * (len(ids) + 1) + "|",
        ]
        for i, row in enumerate(r.matrix):
            cells = ["" if math.isnan(v) else f"{v:.3f}" for v in row]
            lines.append(f"| {ids[i]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@flow(name=DEPLOYMENT_NAME, log_prints=True)
def retrain_on_new_data(
    stream: str = ALL_STREAMS,
    store_dir: str = "mlruns",
    strategy: Literal["finetune", "lwf", "derpp", "joint"] = "derpp",
    mode: Literal["teacher_student", "student_only"] = "teacher_student",
    tolerance: float = 0.02,
    settings: dict[str, Any] | None = None,
) -> list[dict]:
    """Learn every batch the stream's champion has not learned yet; promote the result only if it passes the gate.

    `stream="*"` (the scheduled run) retrains every stream in the store. `settings` holds any other
    RetrainConfig field (epochs, lr, buffer_size, alpha, beta, ...).
    """
    names = stream_names(store_dir) if stream == ALL_STREAMS else [stream]
    results = []
    for name in names:
        cfg = RetrainConfig(
            stream=name, store_dir=store_dir, strategy=strategy, mode=mode, tolerance=tolerance, **(settings or {})
        )
        result = retrain_task(cfg)
        create_markdown_artifact(
            result_markdown(result),
            key=f"retrain-{name.lower().replace('_', '-')}",
            description=f"kdflow retraining of stream {name}: {result.status}",
        )
        print(f"stream {name}: {result.status}: {result.reason}")
        results.append(result.to_dict())
    return results


def retrain_deployment_options(
    cron: str | None = "0 3 * * *",
    stream: str = ALL_STREAMS,
    store_dir: str = "mlruns",
    strategy: str = "derpp",
    mode: str = "teacher_student",
    tolerance: float = 0.02,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parameters, cron schedule and the `kdflow.data.arrived` event trigger of `retrain-on-new-data`.

    The event's stream and store fill the run's parameters, so one deployment serves every stream;
    `stream` limits the trigger to one stream.
    """
    defaults = {
        "stream": stream,
        "store_dir": store_dir,
        "strategy": strategy,
        "mode": mode,
        "tolerance": tolerance,
        "settings": settings or {},
    }
    trigger = DeploymentEventTrigger(
        name="kdflow-batch-arrived",
        expect={ARRIVED},
        match={"prefect.resource.id": RESOURCE_PREFIX + ("*" if stream == ALL_STREAMS else stream)},
        parameters={**defaults, "stream": "{{ event.resource.name }}", "store_dir": "{{ event.payload.store_dir }}"},
    )
    return {"triggers": [trigger], "cron": cron, "parameters": defaults}


def retrain_deployment(**options):
    """The `retrain-on-new-data` deployment; serve it with `prefect.serve(retrain_deployment())`."""
    return retrain_on_new_data.to_deployment(
        name=DEPLOYMENT_NAME,
        **retrain_deployment_options(**options),
        description="Retrain a stream's model on every batch its champion has not learned; gated promotion.",
        tags=["kdflow", "lifelong"],
    )
