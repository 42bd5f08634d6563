"""The deployments kdflow offers, served in one process (`kdflow serve-flows`) or put on a work pool (`kdflow deploy`).

A new flow joins by adding one entry to DEPLOYMENTS; both commands pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import Flow
from prefect.types.entrypoint import EntrypointType


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    flow: Callable[[], Flow]  # imported on use, so listing deployments stays cheap
    description: str
    tags: tuple[str, ...] = ("kdflow",)
    parameters: dict = field(default_factory=dict)
    options: Callable[[], dict] = dict  # more of Flow.to_deployment's arguments: cron=..., triggers=[...]


def _distill_pipeline() -> Flow:
    from flows.distill_pipeline import distill_pipeline

    return distill_pipeline


def _retrain_pipeline() -> Flow:
    from flows.retrain_pipeline import retrain_pipeline_flow

    return retrain_pipeline_flow


def _retrain_pipeline_options() -> dict:
    from flows.retrain_pipeline import retrain_pipeline_options

    return retrain_pipeline_options()


DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec(
        name="distill-pipeline",
        flow=_distill_pipeline,
        description="Train a teacher, tune and distil a student with Optuna, evaluate and register it. "
        "Pick a preset; change any field of the form to override it.",
        parameters={"preset": "digits"},
    ),
    DeploymentSpec(
        name="retrain-pipeline",
        flow=_retrain_pipeline,
        description="A pipeline's champion learns the batches ingested for it (event kdflow.data.arrived, and nightly "
        "at 03:00 for every pipeline); the new version becomes champion only by the retraining decision.",
        tags=("kdflow", "lifelong"),
        options=_retrain_pipeline_options,
    ),
]


def runner_deployments(
    specs: list[DeploymentSpec] | None = None, work_pool_name: str | None = None, job_variables: dict | None = None
):
    """One RunnerDeployment per spec. Module-path entrypoints: any host with kdflow installed can run them."""
    return [
        spec.flow().to_deployment(
            name=spec.name,
            description=spec.description,
            tags=list(spec.tags),
            parameters={**spec.parameters, **spec.options().pop("parameters", {})},
            enforce_parameter_schema=True,  # the server refuses runs whose parameters do not fit the form
            work_pool_name=work_pool_name,
            job_variables=dict(job_variables or {}),
            entrypoint_type=EntrypointType.MODULE_PATH,
            **{k: v for k, v in spec.options().items() if k != "parameters"},
        )
        for spec in specs or DEPLOYMENTS
    ]


def serve_all(limit: int | None = None) -> None:
    """Register every deployment with the Prefect API and run its flow runs here until Ctrl-C."""
    from prefect import serve

    serve(*runner_deployments(), limit=limit)


def ensure_process_pool(name: str) -> bool:
    """Create the work pool `name` (process type) unless it exists; True if it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
            return True


def deploy_all(pool: str, working_dir: str) -> list[str]:
    """Create (or update) every deployment on the work pool `pool`; return their full names.

    Runs execute in `working_dir` on the worker's host: without it a process worker uses a fresh
    temporary folder, and the default stores (mlruns/) would vanish with it.
    """
    names = []
    for deployment in runner_deployments(work_pool_name=pool, job_variables={"working_dir": working_dir}):
        deployment.apply(work_pool_name=pool)
        names.append(deployment.full_name)
    return names
