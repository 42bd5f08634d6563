"""Tuning workers as runs of the `tune-worker` deployment: trials spread over every host of a work pool.

Deploy once per code version:   python -m flows.tune_worker_deployment --pool gpu-pool
then each pipeline run with tune.deployment=tune-worker/kdflow and tune.n_workers=N starts N
runs of it (run_deployment with timeout=0) and waits on the study, not on the runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prefect import flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from pipelines.config.schema import PipelineConfig
from pipelines.training.threads import threads_for_tune_workers, use_threads
from pipelines.tuning.worker import TuneJob, pull_trials
from pipelines.tuning.worker_processes import LaunchWorkers

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_NAME = "kdflow"


@flow(name="tune-worker", log_prints=True)
def tune_worker(config: PipelineConfig, job: TuneJob) -> int:
    """Pull trials from the study until it holds config.tune.n_trials finished ones; return how many ran here."""
    use_threads(threads_for_tune_workers(config, job.data_path, 1), "tune worker")  # one of the host's processes
    return pull_trials(config, job, worker=f"prefect:{flow_run.id}")


class DeploymentRuns:
    """N flow runs of the tune-worker deployment, started without waiting for them."""

    def __init__(self, cfg: PipelineConfig, job: TuneJob, n: int):
        parameters = {"config": cfg.model_dump(), "job": job.model_dump()}
        self.ids = [
            run_deployment(cfg.tune.deployment, parameters=parameters, timeout=0, tags=["tune-worker"]).id
            for _ in range(n)
        ]

    def states(self) -> list[FlowRun]:
        with get_client(sync_client=True) as client:
            return [client.read_flow_run(i) for i in self.ids]

    def alive(self) -> int:
        return sum(not (r.state and r.state.is_final()) for r in self.states())

    def join(self, poll_seconds: float = 2.0) -> None:
        while self.alive():
            time.sleep(poll_seconds)
        failed = [f"{r.name} ({r.state.name})" for r in self.states() if not r.state.is_completed()]
        if len(failed) == len(self.ids):
            raise RuntimeError(f"every tune-worker run failed: {', '.join(failed)}; see their logs in the Prefect UI")

    def stop(self) -> None:
        from prefect.states import Cancelling

        with get_client(sync_client=True) as client:
            for run in self.states():
                if not (run.state and run.state.is_final()):
                    client.set_flow_run_state(run.id, Cancelling(), force=True)


def worker_launcher(cfg: PipelineConfig) -> LaunchWorkers | None:
    """Deployment runs when tune.deployment names one; otherwise None (local processes)."""
    return DeploymentRuns if cfg.tune.deployment else None


def deploy(pool: str, name: str = DEPLOYMENT_NAME, source: Path = ROOT) -> str:
    """Register tune-worker on `pool`; workers load the code from `source` (a path every worker host has)."""
    flow_from_source = tune_worker.from_source(
        source=str(source), entrypoint="flows/tune_worker_deployment.py:tune_worker"
    )
    deployment_id = flow_from_source.deploy(name=name, work_pool_name=pool, tags=["gpu"], print_next_steps=False)
    return f"tune-worker/{name} ({deployment_id})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.tune_worker_deployment", description="Deploy the tune-worker flow to a work pool."
    )
    parser.add_argument("--pool", required=True, help="work pool whose workers run the trials")
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: %(default)s)")
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="code location every worker host can read (default: this checkout)"
    )
    args = parser.parse_args(argv)
    print(f"deployed {deploy(args.pool, args.name, args.source)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
