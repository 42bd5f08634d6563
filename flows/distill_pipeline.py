"""The `distill-pipeline` Prefect flow: each stage a task, the whole run one MLflow parent run."""
from __future__ import annotations

import time

import mlflow
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.tune_workers import worker_launcher
from pipelines import stages
from pipelines.config import PipelineConfig
from pipelines.summary import PipelineSummary
from pipelines.tracking import loggable_params, setup_experiment


def stage_task(fn, name: str, gpu: bool = False):
    # Stages cache on content themselves (pipelines/cache.py), so Prefect's own cache stays off.
    return task(fn, name=name, cache_policy=NO_CACHE, tags=["gpu"] if gpu else [])


prepare_data = stage_task(stages.prepare_data, "prepare-data")
train_teacher = stage_task(stages.train_teacher, "train-teacher", gpu=True)
teacher_logits = stage_task(stages.compute_teacher_logits, "teacher-logits", gpu=True)
train_baseline = stage_task(stages.train_baseline, "train-baseline", gpu=True)
tune_student = stage_task(stages.tune_student, "tune-student", gpu=True)
distill_final = stage_task(stages.distill_final, "distill-final", gpu=True)
evaluate = stage_task(stages.evaluate_models, "evaluate", gpu=True)
register = stage_task(stages.register_student, "register")


@flow(name="distill-pipeline", log_prints=True)
def distill_pipeline(config: PipelineConfig) -> dict:
    """Prepare data, train the teacher and a labels-only baseline, tune and distil the student, evaluate, register."""
    cfg = config
    experiment_id = setup_experiment(cfg)
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        seconds[name] = round(time.perf_counter() - started, 3)
        return result

    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "prefect.flow_run_url": str(flow_run.ui_url or "")}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.name}-{flow_run.name or 'run'}", tags=tags) as parent:
        pid = parent.info.run_id
        mlflow.log_params(loggable_params(cfg))
        data = timed("prepare_data", prepare_data, cfg)
        mlflow.log_param("data.digest", data.digest)
        teacher = timed("train_teacher", train_teacher, cfg, data, pid)
        mlflow.set_tags({"kdflow.teacher_run_id": teacher.run_id, "kdflow.teacher_reused": str(teacher.reused).lower()})
        logits = timed("teacher_logits", teacher_logits, cfg, data, teacher)
        baseline = timed("train_baseline", train_baseline, cfg, data, pid)
        tuned = timed("tune_student", tune_student, cfg, data, teacher, logits, pid, worker_launcher(cfg))
        student = timed("distill_final", distill_final, cfg, data, logits, tuned, pid)
        ev = timed("evaluate", evaluate, cfg, data, [teacher, baseline, student], pid)
        reg = timed("register", register, cfg, data, student, ev)
        summary = PipelineSummary.build(cfg, experiment_id, pid, data, teacher, baseline, student, tuned, ev, reg, seconds)
        mlflow.log_metrics({f"test/{role}_acc": acc for role, acc in ev.test_acc.items()})
        mlflow.log_dict(summary.model_dump(), "summary.json")
    return summary.model_dump()
