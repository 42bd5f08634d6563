"""The `distill-pipeline` Prefect flow: each stage a task, the whole run one MLflow parent run."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import mlflow
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run
from pydantic.json_schema import SkipJsonSchema

from flows.artifacts import TrialProgressArtifact, publish_summary, publish_trials, run_url
from flows.masked_errors import credentials_masked, masking_credentials
from flows.retries import RETRIES, RETRY_DELAYS_SECONDS, retry_on_transient
from flows.tune_worker_deployment import worker_launcher
from kdcore.device import resolve_device
from pipelines import stages
from pipelines.config.overrides import ConfigOverrides, EmptiableField, PresetName, resolve_config
from pipelines.tracking.dataset_input import log_dataset
from pipelines.tracking.run_liveness import liveness_tags
from pipelines.tracking.runs import loggable_params, redact, setup_experiment, tracking_uri
from pipelines.tracking.summary import PipelineSummary
from pipelines.training.progress import listening
from pipelines.training.threads import threads_for_run, use_threads
from pipelines.tuning.study import final_student, searches_size, trial_rows


def stage_task(fn, name: str, gpu: bool = False):
    # Stages cache on content themselves (pipelines/cache/keys.py), so Prefect's own cache stays off.
    # Transient failures (tracking server away, SQLite busy) are retried; user errors are not.
    return task(
        masking_credentials(fn),
        name=name,
        cache_policy=NO_CACHE,
        tags=["gpu"] if gpu else [],
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS_SECONDS,
        retry_condition_fn=retry_on_transient,
    )


def tune_and_show(cfg, data, teacher, logits_path, parent_run_id, launch=None):
    """The Optuna study, with a progress artifact per trial and a table of the trials at the end."""
    with listening(TrialProgressArtifact()):
        tuned = stages.tune_student(cfg, data, teacher, logits_path, parent_run_id, launch)
    publish_trials(cfg.name, trial_rows(cfg, tuned.study_name))
    return tuned


prepare_data = stage_task(stages.prepare_data, "prepare-data")
train_teacher = stage_task(stages.train_teacher, "train-teacher", gpu=True)
teacher_logits = stage_task(stages.compute_teacher_logits, "teacher-logits", gpu=True)
train_baseline = stage_task(stages.train_baseline, "train-baseline", gpu=True)
tune_student = stage_task(tune_and_show, "tune-student", gpu=True)
distill_final = stage_task(stages.distill_final, "distill-final", gpu=True)
evaluate = stage_task(stages.evaluate_models, "evaluate", gpu=True)
register = stage_task(stages.register_student, "register")


@contextmanager
def stage_logs_in_prefect():
    """The stages' `kdflow` log lines ("teacher: reusing ...") also appear in the flow run's logs."""
    log = logging.getLogger("kdflow")
    handler, old_level = APILogHandler(), log.level
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)


@flow(name="distill-pipeline", log_prints=True)
def distill_pipeline(
    preset: PresetName = PresetName("digits"),
    config: ConfigOverrides | SkipJsonSchema[None] = None,  # no null branch: the form opens on the sections
    clear: tuple[EmptiableField, ...] = (),
) -> dict:
    """Prepare data, train the teacher and a labels-only baseline, tune and distil the student, evaluate, register.

    Args:
        preset: The preset the run starts from (pipelines/config/presets/NAME.yaml).
        config: Fields to change from the preset; an empty field keeps the preset's value.
        clear: Fields to empty, e.g. student.width (the model's default); a field left empty keeps the preset's.
    """
    with credentials_masked():  # the failed run's state message is stored by Prefect: no password in it
        cfg = resolve_config(preset, config, clear)  # a bad combination fails here, naming the field, before any work
        device = str(resolve_device(cfg.runtime.device))
        with stage_logs_in_prefect():
            summary = run_stages(cfg, device)
        publish_summary(summary, redact(tracking_uri(cfg)))
    return summary


def run_stages(cfg, device: str) -> dict:
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        seconds[name] = round(time.perf_counter() - started, 3)
        return result

    # Data first: a dataset that cannot be prepared leaves no run behind in MLflow.
    data = timed("prepare_data", prepare_data, cfg)
    threads = use_threads(threads_for_run(cfg, data.path), "run")  # before any training, shared with its neighbours
    experiment_id = setup_experiment(cfg)
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "prefect.flow_run_url": redact(str(flow_run.ui_url or ""))}
    tags.update(liveness_tags())  # host and pid: a later command closes this run if the process is killed
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{cfg.name}-{flow_run.name or 'run'}", tags=tags
    ) as parent:
        pid = parent.info.run_id
        mlflow.log_params({**loggable_params(cfg), "model.device": device, "runtime.threads_used": threads})
        mlflow.log_param("data.digest", data.digest)
        log_dataset(cfg, data, context="train")  # the run's Datasets column
        teacher = timed("train_teacher", train_teacher, cfg, data, pid)
        mlflow.set_tags({"kdflow.teacher_run_id": teacher.run_id, "kdflow.teacher_reused": str(teacher.reused).lower()})
        logits = timed("teacher_logits", teacher_logits, cfg, data, teacher)
        sized = searches_size(cfg)  # then the labels-only baseline waits for the chosen size: same cost as the student
        if not sized:
            baseline = timed("train_baseline", train_baseline, cfg, data, pid)
        tuned = timed("tune_student", tune_student, cfg, data, teacher, logits, pid, worker_launcher(cfg))
        if sized:
            baseline = timed("train_baseline", train_baseline, cfg, data, pid, final_student(cfg, tuned))
        student = timed("distill_final", distill_final, cfg, data, logits, tuned, pid, teacher)
        ev = timed("evaluate", evaluate, cfg, data, [teacher, baseline, student], pid)
        reg = timed("register", register, cfg, data, student, baseline, tuned, ev, pid)
        summary = PipelineSummary.build(
            cfg, experiment_id, pid, data, teacher, baseline, student, tuned, ev, reg, seconds
        )
        mlflow.log_metrics(
            {f"test/{role}_acc": acc for role, acc in ev.test_acc.items()}
            | summary.kd_gain.metrics()
            | summary.teacher_edge.metrics()
        )
        mlflow.set_tags(summary.teacher_edge.tags())
        summary.mlflow["parent_run_url"] = run_url(redact(tracking_uri(cfg)), experiment_id, pid) or ""
        mlflow.log_dict(summary.model_dump(), "summary.json")
    return summary.model_dump()
