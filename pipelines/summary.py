"""The facts a pipeline run ends with: printed as a table, written as JSON, logged to MLflow."""

from __future__ import annotations

from pydantic import BaseModel

from pipelines.config import PipelineConfig
from pipelines.results import Evaluation, PreparedData, Registration, TrainedModel, TuneResult


class ModelFacts(BaseModel):
    arch: str
    test_acc: float
    parameters: int
    mlflow_run_id: str


class KDGain(BaseModel):
    """KD's gain over labels-only: the distilled student's accuracy minus the baseline's, in points.

    On validation, the student's figure is the tuning's best trial (at its best epoch) and the baseline's its own
    best epoch; the student's is the best of several trials, so it leans optimistic: the test gain is the honest
    one. `val` is None when either is missing (tune.refit=train+val holds no validation back, tune.n_trials=0).
    """

    val: float | None
    test: float
    student_val_acc: float | None
    baseline_val_acc: float | None

    @classmethod
    def of(cls, baseline: TrainedModel, tuned: TuneResult, ev: Evaluation) -> KDGain:
        student_val, baseline_val = tuned.best_value, baseline.val_acc
        val = None if student_val is None or baseline_val is None else 100 * (student_val - baseline_val)
        test = 100 * (ev.test_acc["student"] - ev.test_acc["baseline"])
        return cls(val=val, test=test, student_val_acc=student_val, baseline_val_acc=baseline_val)

    def metrics(self) -> dict[str, float]:
        """For the parent MLflow run."""
        return {f"kd_gain/{k}": v for k, v in (("val", self.val), ("test", self.test)) if v is not None}


def kd_gain_sentence(summary: dict) -> str:
    """One line for the terminal and the flow run's page."""
    gain = summary["kd_gain"]
    val = "n/a (no validation figure for both)" if gain["val"] is None else f"{gain['val']:+.2f} points"
    return f"KD's gain over labels-only (student minus baseline): validation {val}, test {gain['test']:+.2f} points"


def champion_sentence(summary: dict) -> str:
    """Which model was registered, why that one, and whether it is now the champion (and why)."""
    reg, ml, champ = summary["registered"], summary["mlflow"], summary["champion"]
    head = f"registered {ml['registered_model']} v{ml['version']}, {reg['choice']}"
    if champ["moved"] and champ.get("before") is None:
        return f"{head}. v{ml['version']} is now champion (no champion before)."
    if champ["moved"]:
        return f"{head}. v{ml['version']} is now champion, {champ['reason']}."
    return f"{head}. Not champion: {champ['reason']}."


class StudentChoice(BaseModel):
    """Which trial's student was retrained and registered, and why (a budget or a Pareto front)."""

    trial: int
    student: str  # "cnn_small width=12"
    reason: str
    costs: dict[str, float]
    front_points: int

    @classmethod
    def of(cls, tuned: TuneResult, student: TrainedModel) -> StudentChoice | None:
        if tuned.choice is None or tuned.chosen_trial is None:
            return None
        sizes = {k: v for k, v in (tuned.student or {}).items() if k in ("width", "depth") and v is not None}
        return cls(
            trial=tuned.chosen_trial,
            student=student.arch + "".join(f" {k}={v}" for k, v in sizes.items()),
            reason=tuned.choice,
            costs=tuned.costs,
            front_points=len(tuned.front),
        )


def choice_sentence(summary: dict) -> str | None:
    """Which point of the search was chosen and why; None when the choice is today's (best accuracy, no budget)."""
    c = summary.get("student_choice")
    if not c:
        return None
    costs = ", ".join(f"{k} {v:.4g}" for k, v in c["costs"].items())
    return (
        f"student {c['student']} from trial {c['trial']} ({costs}): {c['reason']}; "
        f"the front (pareto/ in the parent run) holds {c['front_points']} points"
    )


class PipelineSummary(BaseModel):
    pipeline: str
    data_digest: str
    models: dict[str, ModelFacts]
    best_method: str
    best_params: dict[str, float]
    best_val_acc: float | None
    kd_gain: KDGain
    trials: dict[str, int]
    mlflow: dict[str, str]
    optuna: dict[str, str]
    registered: dict[str, str | float]  # role ("student" or "baseline"), why that one, its test acc
    champion: dict[str, str | bool | None]  # moved, the gate's reason, comparable, the champion before
    stage_seconds: dict[str, float]
    teacher_reused: bool = False
    student_choice: StudentChoice | None = None  # with a budget or a cost objective: the front's chosen point

    @classmethod
    def build(
        cls,
        cfg: PipelineConfig,
        experiment_id: str,
        parent_run_id: str,
        data: PreparedData,
        teacher: TrainedModel,
        baseline: TrainedModel,
        student: TrainedModel,
        tuned: TuneResult,
        ev: Evaluation,
        reg: Registration,
        seconds: dict[str, float],
    ) -> PipelineSummary:
        models = {
            m.role: ModelFacts(
                arch=m.arch, test_acc=ev.test_acc[m.role], parameters=m.parameters, mlflow_run_id=m.run_id
            )
            for m in (teacher, baseline, student)
        }
        return cls(
            pipeline=cfg.name,
            data_digest=data.digest,
            models=models,
            best_method=tuned.method,
            best_params=tuned.best_params,
            best_val_acc=tuned.best_value,
            kd_gain=KDGain.of(baseline, tuned, ev),
            trials={"complete": tuned.complete, "pruned": tuned.pruned, "requested": cfg.tune.n_trials},
            mlflow={
                "experiment_id": experiment_id,
                "parent_run_id": parent_run_id,
                "evaluation_run_id": ev.run_id,
                "registered_model": reg.name,
                "version": reg.version,
            },
            optuna={"storage": tuned.storage, "study_name": tuned.study_name},
            registered={"role": reg.role, "choice": reg.choice, "test_acc": reg.test_acc},
            champion={
                "moved": reg.champion,
                "reason": reg.reason,
                "comparable": reg.comparable,
                "before": reg.champion_before,
            },
            stage_seconds={**seconds, "total": round(sum(seconds.values()), 3)},
            teacher_reused=teacher.reused,
            student_choice=StudentChoice.of(tuned, student),
        )
