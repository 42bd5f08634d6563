"""Stage 5: an Optuna study over the KD method and its weights, scored on the validation split."""
from __future__ import annotations

import logging
import time

import mlflow
import optuna
import torch

from kdcore.models import build_model
from kdcore.train import fit
from pipelines.cache import cache_key
from pipelines.config import PipelineConfig
from pipelines.methods import build_method, needs_teacher_model, searched_methods
from pipelines.results import PreparedData, TrainedModel, TuneResult
from pipelines.stages.prepare_data import load_bundle
from pipelines.progress import report_trials
from pipelines.tracking import EpochLogger, redact, stage_run
from pipelines.teacher_targets import teacher_targets
from pipelines.training import settings_for
from pipelines.tuning import FINISHED, count, defaults, fixed_values, open_study, search, storage_url, warm_start

log = logging.getLogger("kdflow")
State = optuna.trial.TrialState


def default_study_name(cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel) -> str:
    searched = cfg.tune.model_dump(exclude={"n_trials", "study_name", "storage"})
    key = cache_key(data.digest, teacher.run_id, cfg.student.model_dump(), cfg.distill.method, searched, cfg.runtime.seed,
                    fixed_values(cfg))
    return f"kdflow-{cfg.name}-{key}"


def tune_student(
    cfg: PipelineConfig, data: PreparedData, teacher: TrainedModel, logits_path: str, parent_run_id: str
) -> TuneResult:
    started = time.perf_counter()
    study_name = cfg.tune.study_name or default_study_name(cfg, data, teacher)
    if cfg.tune.n_trials == 0:
        log.info("tune: tune.n_trials=0, using the configured hyper-parameters")
        return TuneResult(study_name=study_name, storage=redact(storage_url(cfg)), method=cfg.distill.method,
                          best_params=defaults(cfg, cfg.distill.method), best_value=None, complete=0, pruned=0, seconds=0.0)

    bundle = load_bundle(data.path)
    methods = searched_methods(cfg)
    # once, shared by all trials; feature methods also read the teacher's features (eval mode, never updated)
    targets = teacher_targets(bundle, teacher, logits_path, need_model=any(needs_teacher_model(m) for m in methods))
    log.info("tune: soft targets from the %s", targets.kind)
    epochs = cfg.tune.epochs or cfg.student.train.epochs
    study = open_study(cfg, study_name, epochs)
    if not study.trials:
        study.enqueue_trial(warm_start(cfg))  # warm start from the known-good values
    finished = sum(count(study, s) for s in FINISHED)
    remaining = max(0, cfg.tune.n_trials - finished)
    log.info("tune: study %s has %d finished trials; running %d more", study_name, finished, remaining)
    report_trials(finished, cfg.tune.n_trials, study.best_value if count(study, State.COMPLETE) else None)

    def objective(trial: optuna.Trial) -> float:
        method, params = search(trial, cfg)
        settings = settings_for(cfg.student.train, cfg, epochs=epochs, lr=params["lr"], weight_decay=params["weight_decay"])
        pruned_at = 0
        with stage_run(f"trial-{trial.number}", parent_run_id, **{"optuna.study": study_name, "optuna.trial": trial.number}) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            mlflow.log_params({"method": method, **params})
            logger, epochs_done = EpochLogger(run.info.run_id), []

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                logger(epoch, metrics)
                epochs_done.append(epoch)
                trial.report(metrics["val/acc"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

            torch.manual_seed(settings.seed)
            model = build_model(cfg.student.arch, bundle.input_shape, bundle.num_classes, **cfg.student.options(), **bundle.model_options())
            try:
                history = fit(model, bundle.train, bundle.val, settings, build_method(cfg, method, params),
                              targets.logits, on_epoch, bundle.view, targets.model)
            except optuna.TrialPruned:
                pruned_at = epochs_done[-1]
            mlflow.set_tag("trial_state", "PRUNED" if pruned_at else "COMPLETE")
            if pruned_at:
                mlflow.log_metric("pruned_at_epoch", pruned_at)
            else:
                mlflow.log_metric("val/acc_final", history[-1]["val/acc"])
        if pruned_at:
            raise optuna.TrialPruned()
        return history[-1]["val/acc"]

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = sum(count(study, s) for s in FINISHED)
        best = study.best_value if count(study, State.COMPLETE) else None
        outcome = f"val/acc {trial.value:.4f}" if trial.state == State.COMPLETE else trial.state.name.lower()
        log.info("tune: trial %d/%d %s (best so far %.4f)", done, cfg.tune.n_trials, outcome, float("nan") if best is None else best)
        report_trials(done, cfg.tune.n_trials, best)

    if remaining:
        study.optimize(
            objective,
            n_trials=remaining,
            callbacks=[optuna.study.MaxTrialsCallback(cfg.tune.n_trials, states=FINISHED), progress],
        )
    complete = count(study, State.COMPLETE)
    best_params = dict(study.best_params) if complete else warm_start(cfg)
    method = best_params.pop("method", methods[0])
    log.info("tune: best method %s with %s", method, best_params)
    return TuneResult(
        study_name=study_name,
        storage=redact(storage_url(cfg)),
        method=method,
        best_params=best_params,
        best_value=study.best_value if complete else None,
        complete=complete,
        pruned=count(study, State.PRUNED),
        seconds=time.perf_counter() - started,
    )
