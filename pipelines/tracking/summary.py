"""The facts a pipeline run ends with: printed as a table, written as JSON, logged to MLflow."""

from __future__ import annotations

from pydantic import BaseModel

from pipelines.config.schema import PipelineConfig
from pipelines.results import Evaluation, PreparedData, Registration, TrainedModel, TuneResult


class ModelFacts(BaseModel):
    arch: str
    test_acc: float
    parameters: int
    mlflow_run_id: str
    size_mb: float | None = None  # saved weights on disk
    latency_ms: float | None = None  # one sample, median; None: evaluate.timing=false
    latency_p95_ms: float | None = None
    throughput: float | None = None  # samples (texts) per second at batch 256


class Evidence(BaseModel):
    """Why one distils: the KD student against its teacher, measured side by side in the evaluation run."""

    size_ratio: float  # teacher size / student size: "N x smaller"
    latency_ratio: float | None  # teacher latency / student latency: "M x faster"; None: timing off
    throughput_ratio: float | None  # student throughput / teacher throughput
    acc_points: float  # teacher minus student test accuracy, in points
    device_name: str  # where the times were measured

    @classmethod
    def of(cls, ev: Evaluation) -> Evidence:
        t, s = ev.timing.get("teacher"), ev.timing.get("student")
        timed = t is not None and s is not None
        return cls(
            size_ratio=ev.size_mb["teacher"] / ev.size_mb["student"],
            latency_ratio=t["latency_ms_median"] / s["latency_ms_median"] if timed else None,
            throughput_ratio=s["throughput"] / t["throughput"] if timed else None,
            acc_points=100 * (ev.test_acc["teacher"] - ev.test_acc["student"]),
            device_name=ev.device_name,
        )


def speed_cells(facts: dict) -> list[str]:
    """size MB, latency median (p95) in ms, throughput: the table cells of one model ("-" where not measured)."""
    size = "-" if facts.get("size_mb") is None else f"{facts['size_mb']:.3f}"
    if facts.get("latency_ms") is None:
        return [size, "-", "-"]
    return [size, f"{facts['latency_ms']:.3f} ({facts['latency_p95_ms']:.3f})", f"{facts['throughput']:,.0f}"]


def evidence_sentence(summary: dict) -> str:
    """The headline: the student is N x smaller and M x faster than its teacher, X points of accuracy apart."""
    e = summary.get("evidence")
    if not e:
        return "no size or speed figures (the run predates them)"
    apart = e["acc_points"]
    ahead = "the teacher" if apart > 0 else "the student"
    accuracy = f"{abs(apart):.2f} points of accuracy apart ({ahead} ahead)" if apart else "with the same accuracy"
    if e["latency_ratio"] is None:
        return f"the student is {e['size_ratio']:.1f}x smaller than its teacher, {accuracy} (timing off)"
    return (
        f"the student is {e['size_ratio']:.1f}x smaller and {e['latency_ratio']:.1f}x faster (one sample; "
        f"{e['throughput_ratio']:.1f}x the throughput at batch 256) than its teacher, {accuracy}; "
        f"measured on {e['device_name']}"
    )


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


class TeacherEdge(BaseModel):
    """The teacher's lead over the labels-only student, in points: KD can only pass on what the teacher knows better.

    Compared on validation (each model's kept epoch) when both have a figure, else on test (tune.refit=train+val
    holds no validation back for the baseline). `nothing_to_distil` when the lead is not above zero.
    """

    split: str
    points: float
    teacher_acc: float
    baseline_acc: float
    nothing_to_distil: bool

    @classmethod
    def of(cls, teacher: TrainedModel, baseline: TrainedModel, ev: Evaluation) -> TeacherEdge:
        if teacher.val_acc is not None and baseline.val_acc is not None:
            split, t, b = "validation", teacher.val_acc, baseline.val_acc
        else:
            split, t, b = "test", ev.test_acc["teacher"], ev.test_acc["baseline"]
        points = 100 * (t - b)
        return cls(split=split, points=points, teacher_acc=t, baseline_acc=b, nothing_to_distil=points <= 0)

    def tags(self) -> dict[str, str]:
        """For the parent MLflow run: searchable (`tags.kdflow.nothing_to_distil = 'true'`)."""
        return {"kdflow.nothing_to_distil": str(self.nothing_to_distil).lower()}

    def metrics(self) -> dict[str, float]:
        return {f"teacher_edge/{'val' if self.split == 'validation' else 'test'}": self.points}


def nothing_to_distil_sentence(summary: dict) -> str | None:
    """Said when the teacher is no better than the labels-only student; None when it is."""
    edge = summary.get("teacher_edge")
    if not edge or not edge["nothing_to_distil"]:
        return None
    return (
        f"Nothing to distil: the teacher's {edge['split']} accuracy ({edge['teacher_acc']:.2%}) is not above the "
        f"labels-only student's ({edge['baseline_acc']:.2%}); train a stronger teacher (more epochs, a larger arch) "
        "before distilling"
    )


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
    teacher_edge: TeacherEdge
    trials: dict[str, int]
    mlflow: dict[str, str]
    optuna: dict[str, str]
    registered: dict[str, str | float]  # role ("student" or "baseline"), why that one, its test acc
    champion: dict[str, str | bool | None]  # moved, the gate's reason, comparable, the champion before
    stage_seconds: dict[str, float]
    teacher_reused: bool = False
    evidence: Evidence | None = None
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
        models = {m.role: model_facts(m, ev) for m in (teacher, baseline, student)}
        return cls(
            pipeline=cfg.name,
            data_digest=data.digest,
            models=models,
            best_method=tuned.method,
            best_params=tuned.best_params,
            best_val_acc=tuned.best_value,
            kd_gain=KDGain.of(baseline, tuned, ev),
            teacher_edge=TeacherEdge.of(teacher, baseline, ev),
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
            evidence=Evidence.of(ev),
            student_choice=StudentChoice.of(tuned, student),
        )


def model_facts(m: TrainedModel, ev: Evaluation) -> ModelFacts:
    timing = ev.timing.get(m.role, {})
    return ModelFacts(
        arch=m.arch,
        test_acc=ev.test_acc[m.role],
        parameters=m.parameters,
        mlflow_run_id=m.run_id,
        size_mb=ev.size_mb.get(m.role),
        latency_ms=timing.get("latency_ms_median"),
        latency_p95_ms=timing.get("latency_ms_p95"),
        throughput=timing.get("throughput"),
    )
