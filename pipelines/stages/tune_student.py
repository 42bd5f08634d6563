"""Stage 5: an Optuna study over the KD method and its weights, scored on the validation split.

The trials run in tune.n_workers workers (pipelines/tuning/worker.py) that share the study's
database; this stage opens the study, starts the workers and returns once the study holds
tune.n_trials finished trials, so the final student never starts on a half-done search.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna

from pipelines.cache.keys import cache_dir, cache_key
from pipelines.cache.store_lock import store_lock
from pipelines.config.methods import searched_methods
from pipelines.config.schema import ModelConfig, PipelineConfig
from pipelines.results import PreparedData, TrainedModel, TuneResult
from pipelines.tracking.runs import redact
from pipelines.training.progress import report_trials
from pipelines.tuning.pareto_front import choose, log_front
from pipelines.tuning.study import (
    FINISHED,
    STUDENT_KEYS,
    best_accuracy,
    chosen_student,
    count,
    defaults,
    fixed_values,
    open_study,
    storage_url,
    warm_starts,
)
from pipelines.tuning.study_plots import log_study_plots
from pipelines.tuning.worker import TuneJob, pull_trials, study_progress
from pipelines.tuning.worker_processes import LaunchWorkers, LocalWorkers

log = logging.getLogger("kdflow")
State = optuna.trial.TrialState


def default_study_name(cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel) -> str:
    searched = cfg.tune.model_dump(
        exclude={
            "n_trials",
            "study_name",
            "storage",
            "n_workers",
            "vectorise",  # how trials are scheduled, not what they train: the same study
            "deployment",
            "heartbeat_seconds",
            "grace_seconds",
        }
    )
    # The size search and the objectives join the key only when used: studies of earlier configs keep their names.
    for key, default in (("student_archs", []), ("objectives", ["accuracy"])):
        if searched[key] == default:
            del searched[key]
    for key in ("width", "depth"):
        if searched["space"][key] is None:
            del searched["space"][key]
    if cfg.register.budget:  # one objective: over-budget trials are not trained, so the budget shapes the study
        searched["budget"] = cfg.register.budget
    key = cache_key(
        data.digest,
        teacher.run_id,
        cfg.student.model_dump(),
        cfg.distill.method,
        searched,
        cfg.runtime.seed,
        fixed_values(cfg),
        cfg.distill.teacher_views,
    )  # other soft targets: another objective
    return f"kdflow-{cfg.name}-{key}"


def wait_for_study(study: optuna.Study, wanted: int, workers, poll_seconds: float = 2.0) -> None:
    """Block until the study holds `wanted` finished trials; fail if every worker is gone before that."""
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is noticed even if no worker asks
        finished, running, waiting = study_progress(study)
        report_trials(finished, wanted, best_accuracy(study))
        if finished >= wanted:
            return
        if not workers.alive():
            raise RuntimeError(
                f"all tuning workers ended but study {study.study_name} holds {finished}/{wanted} finished trials "
                f"({running} running, {waiting} queued); see the workers' logs, then rerun: the study resumes"
            )
        time.sleep(poll_seconds)


def tune_student(
    cfg: PipelineConfig,
    data: PreparedData,
    teacher: TrainedModel,
    logits_path: str,
    parent_run_id: str,
    launch: LaunchWorkers | None = None,
) -> TuneResult:
    """`launch` starts tune.n_workers workers elsewhere (flows/ passes Prefect deployment runs);
    default: local processes."""
    started = time.perf_counter()
    study_name = cfg.tune.study_name or default_study_name(cfg, data, teacher)
    if cfg.tune.n_trials == 0:
        log.info("tune: tune.n_trials=0, using the configured hyper-parameters")
        return TuneResult(
            study_name=study_name,
            storage=redact(storage_url(cfg)),
            method=cfg.distill.method,
            best_params=defaults(cfg, cfg.distill.method),
            best_value=None,
            complete=0,
            pruned=0,
            seconds=0.0,
        )

    epochs = cfg.tune.epochs or cfg.student.train.epochs
    # Two runs sharing a study (same data, teacher and search) must not both queue the warm starts.
    with store_lock(cfg.runtime.store_dir, f"study-{cache_key(study_name)}"):
        study = open_study(cfg, study_name, epochs)
        if not study.trials:
            for params in warm_starts(cfg)[: cfg.tune.n_trials]:  # known-good values first; none queued past n_trials
                study.enqueue_trial(params)
    finished = sum(count(study, s) for s in FINISHED)
    log.info(
        "tune: study %s has %d finished trials; %d wanted, %d worker(s)",
        study_name,
        finished,
        cfg.tune.n_trials,
        cfg.tune.n_workers,
    )
    # Absolute paths: workers start in their own folders (a Prefect worker runs flows in the code's folder).
    job = TuneJob(
        study_name=study_name,
        data_path=str(Path(data.path).resolve()),
        logits_path=str(Path(logits_path).resolve()) if logits_path else "",  # "": the teacher runs online
        teacher_checkpoint=str(Path(teacher.checkpoint).resolve()),
        parent_run_id=parent_run_id,
        epochs=epochs,
    )
    report_trials(finished, cfg.tune.n_trials, best_accuracy(study))

    if finished < cfg.tune.n_trials:
        if launch is None and cfg.tune.n_workers == 1:
            pull_trials(cfg, job, worker="local-0")  # in this process: no start-up cost for the common case
        else:
            workers = (launch or LocalWorkers)(cfg, job, cfg.tune.n_workers)
            try:
                wait_for_study(study, cfg.tune.n_trials, workers)
                workers.join()  # each ends by itself once the study is full, after its current trial
            except BaseException:
                workers.stop()
                raise

    complete = count(study, State.COMPLETE)
    log_study_plots(study, parent_run_id)
    choice = choose(cfg, study)  # BudgetUnreachable: no trial fits register.budget, nothing more is done
    best_params = dict(choice.trial.params) if choice else warm_starts(cfg)[0]
    student = chosen_student(cfg, best_params)
    for key in STUDENT_KEYS:
        best_params.pop(key, None)
    method = best_params.pop("method", searched_methods(cfg)[0])
    front = []
    if choice and choice.cost:
        front = log_front(
            cfg, choice, parent_run_id, cache_dir(cfg.runtime.store_dir, "runs") / f"front-{parent_run_id}"
        )
        log.info("tune: chose trial %d, %s", choice.trial.number, choice.reason)
    log.info("tune: best method %s with %s, student %s", method, best_params, describe(student))
    return TuneResult(
        study_name=study_name,
        storage=redact(storage_url(cfg)),
        method=method,
        best_params=best_params,
        best_value=choice.trial.values[0] if choice else None,
        best_epoch=choice.trial.user_attrs.get("best_epoch") if choice else None,  # None: a study run before
        complete=complete,
        pruned=count(study, State.PRUNED),
        seconds=time.perf_counter() - started,
        student=None if student == cfg.student else student.model_dump(),
        chosen_trial=choice.trial.number if choice else None,
        choice=choice.reason if choice else None,
        costs={k.removeprefix("cost."): v for k, v in choice.trial.user_attrs.items() if k.startswith("cost.")}
        if choice
        else {},
        front=front,
    )


def describe(spec: ModelConfig) -> str:
    return spec.arch + "".join(f" {k}={v}" for k, v in spec.options().items() if k in ("width", "depth"))
