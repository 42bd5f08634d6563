"""One tuning worker: pulls trials from the shared study until it holds the requested number of finished trials.

Any number of these run at once (processes here, Prefect flow runs on other hosts); the study's
database is the only thing they share. Run as `python -m pipelines.tuning.worker` with a TuneJob
as JSON on stdin (stdin, so a storage password never shows in a process list).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time

import mlflow
import optuna
import torch
from pydantic import BaseModel

from kdcore.data import DataBundle
from kdcore.soft_targets import SoftTargets
from kdcore.train import fit
from pipelines.config.methods import build_method, needs_teacher_model, searched_methods
from pipelines.config.schema import PipelineConfig
from pipelines.teachers.teacher_targets import teacher_targets
from pipelines.tracking.runs import EpochLogger, stage_run, tracking_uri
from pipelines.training.model_run import settings_for
from pipelines.training.progress import report_trials
from pipelines.tuning.student_cost import build_student, measure, wanted_costs
from pipelines.tuning.study import FINISHED, best_accuracy, count, multi_objective, open_study, search, search_student
from pipelines.tuning.trial_group import GroupRunner, group_size

log = logging.getLogger("kdflow")
State = optuna.trial.TrialState


class TuneJob(BaseModel):
    """What every worker of one study needs: small paths and ids, never tensors."""

    study_name: str
    data_path: str
    logits_path: str
    teacher_checkpoint: str
    parent_run_id: str
    epochs: int


def where(device: str) -> dict[str, str]:
    """Host, process and device of this worker: recorded on every trial it runs."""
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else device
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "device": name}


def study_progress(study: optuna.Study) -> tuple[int, int, int]:
    """(finished, running, waiting) trials of the study."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return sum(s in FINISHED for s in states), states.count(State.RUNNING), states.count(State.WAITING)


def load_inputs(cfg: PipelineConfig, job: TuneJob) -> tuple[DataBundle, SoftTargets]:
    """The data and the soft targets: once per worker, shared by its trials."""
    bundle = DataBundle.load(job.data_path)
    # feature methods also read the teacher's features (eval mode)
    need_model = any(needs_teacher_model(m) for m in searched_methods(cfg))
    targets = teacher_targets(bundle, job.teacher_checkpoint, job.logits_path, need_model=need_model)
    log.info("tune: soft targets from the %s", targets.kind)
    return bundle, targets


def make_objective(cfg: PipelineConfig, job: TuneJob, worker: str, bundle: DataBundle, targets: SoftTargets):
    multi, budget = multi_objective(cfg), cfg.register.limit()
    costs_wanted = wanted_costs(cfg.tune.objectives, budget)
    latencies: dict[str, float] = {}  # by architecture, size and device: measured once, shared through the study

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        method, params = search(trial, cfg)
        student = search_student(trial, cfg)
        settings = settings_for(
            cfg.student.train, cfg, epochs=job.epochs, lr=params["lr"], weight_decay=params["weight_decay"]
        )
        latencies.update({k: v for k, v in trial.study.user_attrs.items() if k.startswith("latency_ms/")})
        known = dict(latencies)
        costs = measure(costs_wanted, student, bundle, settings.device, latencies)
        for key in latencies.keys() - known.keys():
            trial.study.set_user_attr(key, latencies[key])
        for name, value in costs.items():
            trial.set_user_attr(f"cost.{name}", value)
        over = budget is not None and costs[budget[0]] > budget[1]
        if budget is not None:
            trial.set_user_attr("over_budget_by", costs[budget[0]] - budget[1])
        origin = {**where(settings.device), "worker": worker}
        pruned_at = 0
        tags = {
            "optuna.study": job.study_name,
            "optuna.trial": trial.number,
            **{f"kdflow.{k}": v for k, v in origin.items()},
        }
        with stage_run(f"trial-{trial.number}", job.parent_run_id, **tags) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            for key, value in origin.items():
                trial.set_user_attr(key, value)
            mlflow.log_params(
                {
                    "method": method,
                    **params,
                    "distill.soft_targets": targets.kind,
                    "runtime.threads_used": torch.get_num_threads(),
                    **{f"student.{k}": v for k, v in student.options().items() if k in ("width", "depth")},
                    "student.arch": student.arch,
                }
            )
            mlflow.log_metrics({f"cost/{name}": value for name, value in costs.items()})
            if over and not multi:  # one objective: an over-budget student is not worth its training
                mlflow.set_tag("trial_state", "OVER_BUDGET")
                log.info("tune: trial %d %s is over register.budget, not trained", trial.number, student.arch)
            else:
                history, pruned_at = train_trial(trial, cfg, method, params, student, settings, targets, run, multi)
                mlflow.set_tag("trial_state", "PRUNED" if pruned_at else "COMPLETE")
                if pruned_at:
                    mlflow.log_metric("pruned_at_epoch", pruned_at)
                else:
                    mlflow.log_metrics({"val/acc_final": history[-1]["val/acc"], "best_epoch": history.kept_epoch})
                    trial.set_user_attr("best_epoch", history.kept_epoch)
        if over and not multi:
            raise optuna.TrialPruned(f"over register.budget {cfg.register.budget}")
        if pruned_at:
            raise optuna.TrialPruned()
        # The value is the best epoch's val/acc (each epoch's went to the pruner above): the weights fit keeps.
        if multi:
            return history.kept["val/acc"], costs[cfg.tune.objectives[1]]
        return history.kept["val/acc"]

    def train_trial(trial, cfg, method, params, student, settings, targets, run, multi):
        """The trial's student trained with its parameters; (history, the epoch it was pruned at or 0)."""
        epochs_done = []
        with EpochLogger(run.info.run_id) as logger:  # its exit waits for the background metric writes

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                logger(epoch, metrics)
                epochs_done.append(epoch)
                if multi:  # Optuna cannot prune a multi-objective study (Trial.report raises)
                    return
                trial.report(metrics["val/acc"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

            torch.manual_seed(settings.seed)
            model = build_student(student, bundle)
            try:
                history = fit(
                    model,
                    bundle.train,
                    bundle.val,
                    settings,
                    build_method(cfg, method, params),
                    soft_targets=targets,
                    on_epoch=on_epoch,
                    view=bundle.view,
                )
            except optuna.TrialPruned:
                return None, epochs_done[-1]
        return history, 0

    return objective


def pull_trials(cfg: PipelineConfig, job: TuneJob, worker: str, poll_seconds: float = 1.0) -> int:
    """Run trials until the study holds tune.n_trials finished ones; return how many this worker ran.

    A worker with nothing to start waits while others' trials run: if one of them dies, its trial
    turns stale, gets failed and queued again (pipelines/tuning/dead_trials.py), and someone must run it.
    """
    mlflow.set_tracking_uri(tracking_uri(cfg))
    study = open_study(cfg, job.study_name, job.epochs)
    bundle, targets = load_inputs(cfg, job)
    settings = settings_for(cfg.student.train, cfg, epochs=job.epochs)
    group = group_size(cfg, bundle, targets, settings)  # tune.vectorise: trials this worker trains at once
    if group > 1:
        runner = GroupRunner(cfg, job, worker, bundle, targets, where(settings.device))
    else:
        objective = make_objective(cfg, job, worker, bundle, targets)
    wanted, ran = cfg.tune.n_trials, 0

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = sum(count(study, s) for s in FINISHED)
        outcome = f"val/acc {trial.values[0]:.4f}" if trial.state == State.COMPLETE else trial.state.name.lower()
        log.info("tune: trial %d (%s) %s; %d/%d finished", trial.number, worker, outcome, done, wanted)
        report_trials(done, wanted, best_accuracy(study))

    while True:
        optuna.storages.fail_stale_trials(study)
        finished, running, waiting = study_progress(study)
        if finished >= wanted:
            return ran
        if waiting or finished + running < wanted:
            if group == 1:
                study.optimize(objective, n_trials=1, callbacks=[progress])  # takes a queued (WAITING) trial first
                ran += 1
                continue
            # as many as the study still needs, up to the group size; ask() takes queued trials first, too
            for trial in runner.run(study, min(group, max(wanted - finished - running, 1))):
                progress(study, trial)
                ran += 1
        else:
            time.sleep(poll_seconds)


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: Optuna fails the running trial and MLflow ends its run (FAILED) on the way out.

    Only the first signal interrupts: Ctrl-C reaches the worker and its run, which then stops the worker with
    SIGTERM, and a second KeyboardInterrupt inside MLflow's end_run would leave the trial's run RUNNING."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    """A local worker process: `{"config": ..., "job": ..., "worker": ..., "threads": N}` on stdin."""
    request = json.loads(sys.stdin.read())
    signal.signal(signal.SIGTERM, interrupt)  # stopped by the stage: end the trial's run rather than vanish
    signal.signal(signal.SIGINT, interrupt)  # Ctrl-C in the terminal reaches the workers too
    logging.basicConfig(level=logging.INFO, format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(int(request.get("threads") or torch.get_num_threads()))  # the run chose for its workers
    cfg = PipelineConfig.model_validate(request["config"])
    try:
        ran = pull_trials(cfg, TuneJob.model_validate(request["job"]), request["worker"])
    except KeyboardInterrupt:
        log.info("tune: worker %s stopped; its trial failed and its run ended", request["worker"])
        return 128 + signal.SIGTERM
    log.info("tune: worker %s ran %d trials", request["worker"], ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
