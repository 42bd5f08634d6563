"""The `retrain-pipeline` flow: a pipeline's champion learns its new batches (event kdflow.data.arrived, and cron).

Its Prefect form is typed like the distill form: the pipeline's name, the store, and the retrain.* settings
(every one optional: empty keeps the value the pipeline's config has), with titles, descriptions, choices and bounds.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.runtime import flow_run
from pydantic import Field

from flows.stream_events import ARRIVED, RESOURCE_PREFIX
from pipelines.config.overrides import overrides_model, set_fields
from pipelines.config.schema import RetrainSection
from pipelines.lifelong.continual import PipelineRetrainResult, retrain_pipeline
from pipelines.stream import StreamStore, stream_names

DEPLOYMENT_NAME = "retrain-pipeline"
ALL_PIPELINES = "*"
RetrainOverrides = overrides_model(RetrainSection)


def bound_pipelines(store_dir: str) -> list[str]:
    """The pipelines some stream of the store is bound to (`kdflow ingest --pipeline`)."""
    names = {(StreamStore(store_dir, s).settings() or {}).get("pipeline") for s in stream_names(store_dir)}
    return sorted(n for n in names if n)


@task(name="retrain-champion", cache_policy=NO_CACHE, tags=["gpu"])
def retrain_task(pipeline: str, store_dir: str, changes: dict) -> PipelineRetrainResult:
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "prefect.flow_run_url": str(flow_run.ui_url or "")}
    return retrain_pipeline(pipeline, store_dir, changes, flow_run_tags=tags)


def result_markdown(r: PipelineRetrainResult) -> str:
    lines = [f"# Retraining of pipeline `{r.pipeline}`: {r.status}", "", f"**Decision:** {r.reason}", ""]
    if r.part_accuracies:
        lines += [f"v{r.version} ({'champion' if r.promoted else 'not promoted'}); MLflow run `{r.run_id}`", ""]
        lines += ["| test part | new version | champion re-scored |", "|---|---|---|"]
        lines += [f"| {p} | {a:.4f} | {r.champion_part_accuracies[p]:.4f} |" for p, a in r.part_accuracies.items()]
        m = r.metrics
        lines += ["", f"average accuracy {m['avg_acc']:.4f}, BWT {m['bwt']:.4f}, forgetting {m['forgetting']:.4f}"]
    return "\n".join(lines)


@flow(name=DEPLOYMENT_NAME, log_prints=True)
def retrain_pipeline_flow(
    pipeline: Annotated[
        str,
        Field(
            title="Pipeline",
            description="The pipeline whose champion (kdflow-NAME-student) learns its new batches; * for every "
            "pipeline with batches bound to it.",
            max_length=100,
            pattern=r"^(\*|[A-Za-z0-9_.-]*)$",
        ),
    ] = ALL_PIPELINES,
    store_dir: Annotated[str, Field(title="Store", description="The stream store and MLflow root.")] = "mlruns",
    retrain: Annotated[
        RetrainOverrides | None,  # type: ignore[valid-type]
        Field(title="Retraining", description="Settings to change from the pipeline's retrain section."),
    ] = None,
) -> list[dict]:
    """Learn every batch a pipeline's champion has not; the new version becomes champion only by the decision.

    Args:
        pipeline: The pipeline whose champion (kdflow-NAME-student) learns its new batches; * for every pipeline
            with batches bound to it.
        store_dir: The stream store and MLflow root.
        retrain: Settings to change from the pipeline's retrain section; an empty field keeps its value.
    """
    changes = set_fields(retrain)
    names = bound_pipelines(store_dir) if pipeline == ALL_PIPELINES else [pipeline] if pipeline else []
    results = []
    for name in names:
        result = retrain_task(name, store_dir, changes)
        create_markdown_artifact(
            result_markdown(result),
            key=f"retrain-{name.lower().replace('_', '-').replace('.', '-')}",
            description=f"kdflow retraining of pipeline {name}: {result.status}",
        )
        print(f"pipeline {name}: {result.status}: {result.reason}")
        results.append(result.to_dict())
    return results


def retrain_pipeline_options(cron: str | None = "0 3 * * *", store_dir: str = "mlruns") -> dict[str, Any]:
    """The cron schedule (every pipeline with unlearned batches) and the trigger on `kdflow.data.arrived`, whose
    payload names the pipeline (empty for a stream bound to none: the run then does nothing)."""
    trigger = DeploymentEventTrigger(
        name="kdflow-pipeline-batch-arrived",
        expect={ARRIVED},
        match={"prefect.resource.id": RESOURCE_PREFIX + "*"},
        parameters={"pipeline": "{{ event.payload.pipeline }}", "store_dir": "{{ event.payload.store_dir }}"},
    )
    return {"triggers": [trigger], "cron": cron, "parameters": {"pipeline": ALL_PIPELINES, "store_dir": store_dir}}
