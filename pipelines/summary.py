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


class PipelineSummary(BaseModel):
    pipeline: str
    data_digest: str
    models: dict[str, ModelFacts]
    best_method: str
    best_params: dict[str, float]
    best_val_acc: float | None
    trials: dict[str, int]
    mlflow: dict[str, str]
    optuna: dict[str, str]
    champion: dict[str, str | bool]
    stage_seconds: dict[str, float]
    teacher_reused: bool = False

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
            trials={"complete": tuned.complete, "pruned": tuned.pruned, "requested": cfg.tune.n_trials},
            mlflow={
                "experiment_id": experiment_id,
                "parent_run_id": parent_run_id,
                "evaluation_run_id": ev.run_id,
                "registered_model": reg.name,
                "version": reg.version,
            },
            optuna={"storage": tuned.storage, "study_name": tuned.study_name},
            champion={"moved": reg.champion, "reason": reg.reason},
            stage_seconds={**seconds, "total": round(sum(seconds.values()), 3)},
            teacher_reused=teacher.reused,
        )
