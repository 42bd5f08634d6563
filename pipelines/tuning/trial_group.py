"""Trials K at a time (tune.vectorise): K Optuna trials asked at once, trained as one stacked group by `fit`.

Each trial is still itself: its own parameters from the sampler (TPE with constant_liar, so trials asked together
spread out), its own nested MLflow run `trial-N` with its params and per-epoch metrics, its own per-epoch
reports to the pruner (a pruned member leaves the group; its slot is not refilled mid-group), its own outcome
(a member whose loss turns non-finite fails alone), and its own heartbeat. Studies a group cannot serve
(`why_not_vectorised`) run their trials one at a time, as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import optuna
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from kdcore.data import DataBundle
from kdcore.data.bundle import Split
from kdcore.distill import DISTILLERS
from kdcore.soft_targets import SoftTargets
from kdcore.stacked import StackedModels
from kdcore.train import History, TrainSettings, fit
from pipelines.config.methods import build_method, searched_methods
from pipelines.config.schema import PipelineConfig
from pipelines.tracking.run_liveness import liveness_tags
from pipelines.tracking.runs import EpochLogger
from pipelines.training.model_run import settings_for
from pipelines.tuning.group_heartbeat import GroupHeartbeat
from pipelines.tuning.group_reports import GroupReports, write_at_once
from pipelines.tuning.student_cost import build_student
from pipelines.tuning.study import multi_objective, search, search_student, searches_size

log = logging.getLogger("kdflow")
State = optuna.trial.TrialState
AUTO_SIZES = (1, 2, 4, 8, 16, 32)  # group sizes `auto` measures
AUTO_NEAR_BEST = 0.9  # auto takes the smallest K within this share of the best trials per second


def why_not_vectorised(cfg: PipelineConfig) -> str | None:
    """Why this study's trials cannot train as stacked groups; None when they can."""
    if searches_size(cfg):
        return "the search varies the student's architecture or size (tune.student_archs / tune.space.width, depth)"
    for method in searched_methods(cfg):
        if DISTILLERS[method].member_params is None:
            return f"{method} is a feature method (forward hooks on each model): only logit methods stack"
    if multi_objective(cfg):
        return "a multi-objective study (tune.objectives) is not pruned and weighs each trial's own cost"
    if cfg.register.budget:
        return "register.budget is checked per trial before training"
    if cfg.runtime.compile:
        return "runtime.compile compiles one model"
    return None


def why_not_stacked(cfg: PipelineConfig, bundle: DataBundle) -> str | None:
    """Why the student cannot run as stacked members on this data; None when it can (logs how it stacks)."""
    students = [build_student(cfg.student, bundle) for _ in range(2)]
    if any(isinstance(m, torch.nn.RNNBase) for m in students[0].modules()):
        return f"{cfg.student.arch} has recurrent layers, which vmap runs one member at a time"
    sample = bundle.view.normalise(bundle.train.x[:8])
    try:
        stacked = StackedModels(students, sample)
        stacked(sample)
    except Exception as e:  # a layer neither the grouped path nor vmap can run
        return f"{cfg.student.arch} does not stack ({type(e).__name__}: {e})"
    log.info("tune: %s stacks as %s", cfg.student.arch, "grouped layers" if stacked.grouped else "vmap")
    return None


def group_size(cfg: PipelineConfig, bundle: DataBundle, targets: SoftTargets, settings: TrainSettings) -> int:
    """tune.vectorise as a number of trials for this worker: 1 where groups cannot serve the study (logged once)."""
    wanted = cfg.tune.vectorise
    if wanted == 1:
        return 1
    reason = why_not_vectorised(cfg) or why_not_stacked(cfg, bundle)
    if reason is not None:
        log.info("tune: tune.vectorise=%s falls back to one trial at a time: %s", wanted, reason)
        return 1
    if wanted == "auto":
        return measured_group_size(cfg, bundle, targets, settings)
    return min(wanted, cfg.tune.n_trials)


def measured_group_size(cfg: PipelineConfig, bundle: DataBundle, targets: SoftTargets, settings: TrainSettings) -> int:
    """The K with the most trials per second on this worker, measured on a few training steps of each size.

    Throughput flattens once the device is busy, while each extra member asked together gives TPE one less
    finished trial to learn from: so the smallest K within AUTO_NEAR_BEST of the best is taken.
    """
    steps = 8
    n = min(len(bundle.train), steps * settings.batch_size)
    train = Split(bundle.train.x[:n], bundle.train.y[:n])
    probe = replace(targets, logits=None if targets.logits is None else targets.logits[:n], views=None)
    if targets.views is not None:
        probe = replace(probe, teacher=None, logits=torch.zeros(n, bundle.num_classes))  # cost of the loss only
    method = searched_methods(cfg)[0]
    one = replace(settings, epochs=1, early_stop_patience=None)
    rates = {}
    for k in (1, *[k for k in AUTO_SIZES if k <= cfg.tune.n_trials]):  # the first K=1 run warms up
        torch.manual_seed(0)
        models = [build_student(cfg.student, bundle) for _ in range(k)]
        started = time.perf_counter()
        methods = [build_method(cfg, method) for _ in range(k)]
        fit(models, train, None, [one] * k, methods, soft_targets=probe, view=bundle.view)
        rates[k] = k / (time.perf_counter() - started)
    best = max(rates.values())
    chosen = min(k for k, rate in rates.items() if rate >= AUTO_NEAR_BEST * best)
    log.info(
        "tune: tune.vectorise=auto chose %d trials at once (trials/s by group size: %s)",
        chosen,
        ", ".join(f"{k}: {rate:.2f}" for k, rate in rates.items()),
    )
    return chosen


class GroupRunner:
    """Runs groups of trials for one worker: the data and soft targets are loaded once, like the objective's."""

    def __init__(self, cfg: PipelineConfig, job, worker: str, bundle: DataBundle, targets: SoftTargets, origin):
        self.cfg, self.job, self.worker, self.bundle, self.targets = cfg, job, worker, bundle, targets
        self.origin = origin  # host, pid, device of this worker (tuning/worker.py: where)
        self.client = MlflowClient()
        self.experiment_id = self.client.get_run(job.parent_run_id).info.experiment_id  # the trials' runs go there

    def run(self, study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
        """Ask `n` trials, train them as stacked groups (one per method drawn), tell each its outcome."""
        trials = [study.ask() for _ in range(n)]
        told: set[int] = set()
        runs: dict[int, str] = {}
        with GroupHeartbeat(study._storage, [t._trial_id for t in trials]) as heartbeat:
            try:
                attrs: list[tuple[int, str, object]] = []
                plans = [self.plan(trial, runs, attrs) for trial in trials]
                write_at_once(study, user_attrs=attrs)  # before training: a dead worker's runs can be closed
                for method in dict.fromkeys(p[0] for p in plans):
                    members = [(t, p) for t, p in zip(trials, plans) if p[0] == method]
                    for trial, outcome in self.train(study, method, members, runs):
                        self.tell(study, trial, outcome, runs[trial.number])
                        told.add(trial.number)
                        heartbeat.done(trial._trial_id)
            except BaseException:  # the group's failure is each of its untold trials' (Ctrl-C, SIGTERM)
                for trial in trials:
                    if trial.number not in told:
                        study.tell(trial, state=State.FAIL)
                        if trial.number in runs:
                            self.client.set_tag(runs[trial.number], "trial_state", "FAIL")
                            self.client.set_terminated(runs[trial.number], status="FAILED")
                raise
        return [study.trials[t.number] for t in trials]

    def plan(self, trial: optuna.Trial, runs: dict[int, str], attrs: list):
        """The trial's parameters and settings, and its nested MLflow run (params logged as a single trial's are);
        the trial's user attributes (its run, host, pid, device, worker) are added to `attrs`, written at once."""
        cfg, job = self.cfg, self.job
        method, params = search(trial, cfg)
        student = search_student(trial, cfg)
        settings = settings_for(
            cfg.student.train, cfg, epochs=job.epochs, lr=params["lr"], weight_decay=params["weight_decay"]
        )
        origin = {**self.origin, "worker": self.worker}
        tags = {
            "mlflow.parentRunId": job.parent_run_id,
            "mlflow.runName": f"trial-{trial.number}",
            "kdflow.stage": f"trial-{trial.number}",
            "optuna.study": job.study_name,
            "optuna.trial": str(trial.number),
            **{f"kdflow.{k}": str(v) for k, v in origin.items()},
            **liveness_tags(),
        }
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial.number}", tags=tags)
        runs[trial.number] = run.info.run_id
        attrs += [(trial._trial_id, k, v) for k, v in {"mlflow_run_id": run.info.run_id, **origin}.items()]
        logged = {
            "method": method,
            **params,
            "distill.soft_targets": self.targets.kind,
            "runtime.threads_used": torch.get_num_threads(),
            **{f"student.{k}": v for k, v in student.options().items() if k in ("width", "depth")},
            "student.arch": student.arch,
        }
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in logged.items()])
        return method, params, settings

    def train(self, study: optuna.Study, method: str, members, runs: dict[int, str]):
        """Yield (trial, history) for each member of one method's group, once all have trained."""
        loggers = [EpochLogger(runs[trial.number]) for trial, _ in members]
        done: dict[int, list[int]] = {trial.number: [] for trial, _ in members}
        for trial, _ in members:
            self.client.set_tag(runs[trial.number], "kdflow.group_size", str(len(members)))

        reports = GroupReports(study, every=self.cfg.tune.heartbeat_seconds)  # batched writes, one read per epoch

        def on_epoch(trial: optuna.Trial, logger: EpochLogger):
            def report(epoch: int, metrics: dict[str, float]) -> None:
                logger(epoch, metrics)
                done[trial.number].append(epoch)
                if reports.report(trial, epoch, metrics["val/acc"]):
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

            return report

        seed = members[0][1][2].seed
        models = []
        for _ in members:  # each member starts where its own trial would: the same seed, the same weights
            torch.manual_seed(seed)
            models.append(build_student(self.cfg.student, self.bundle))
        histories = fit(
            models,
            self.bundle.train,
            self.bundle.val,
            [plan[2] for _, plan in members],
            [build_method(self.cfg, method, plan[1]) for _, plan in members],
            soft_targets=self.targets,
            on_epoch=[on_epoch(trial, logger) for (trial, _), logger in zip(members, loggers)],
            view=self.bundle.view,
        )
        reports.flush()  # the last epoch's values, before the trials are told
        for logger in loggers:
            logger.flush()
        for (trial, _), history in zip(members, histories):
            yield trial, (history, done[trial.number])

    def tell(self, study: optuna.Study, trial: optuna.Trial, outcome: tuple[History, list[int]], run_id: str) -> None:
        history, epochs = outcome
        error = history.dropped_by
        if isinstance(error, optuna.TrialPruned):
            self.finish_run(run_id, "PRUNED", {"pruned_at_epoch": epochs[-1]})
            study.tell(trial, state=State.PRUNED)
        elif error is not None:
            self.finish_run(run_id, "FAIL", {}, {"kdflow.failure": f"{type(error).__name__}: {error}"[:500]})
            study.tell(trial, state=State.FAIL)
            log.warning("tune: trial %d failed alone in its group: %s", trial.number, error)
        else:
            trial.set_user_attr("best_epoch", history.kept_epoch)
            self.finish_run(
                run_id, "COMPLETE", {"val/acc_final": history[-1]["val/acc"], "best_epoch": history.kept_epoch}
            )
            # the best epoch's val/acc, as a single trial's value: the weights fit keeps
            study.tell(trial, history.kept["val/acc"])

    def finish_run(self, run_id: str, state: str, metrics: dict[str, float], tags: dict[str, str] | None = None):
        """The trial's last metrics and its state in one batch, then the run's end (FAILED for a failed trial)."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in {"trial_state": state, **(tags or {})}.items()],
        )
        self.client.set_terminated(run_id, status="FAILED" if state == "FAIL" else "FINISHED")
