"""Stage 8: register the better of the KD student and the labels-only baseline on validation; the gate decides
whether it becomes `champion` (pipelines/registry/gate.py). The version carries an ONNX export with its parity check
(pipelines/registry/onnx_export.py) and a model card as its description (pipelines/registry/model_card.py)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from kdcore.data import DataBundle
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import PipelineConfig
from pipelines.registry.gate import Candidate, choose_on_validation
from pipelines.registry.model_card import model_card
from pipelines.registry.onnx_export import log_export
from pipelines.registry.registration import class_names, register_version
from pipelines.results import Evaluation, PreparedData, Registration, TrainedModel, TuneResult
from pipelines.stages.evaluate import registered_name


def register_student(
    cfg: PipelineConfig,
    data: PreparedData,
    student: TrainedModel,
    baseline: TrainedModel,
    tuned: TuneResult,
    ev: Evaluation,
    parent_run_id: str | None = None,
) -> Registration:
    name = registered_name(cfg)
    role, choice = choose_on_validation(tuned.best_value, baseline.val_acc)
    chosen = student if role == "student" else baseline
    acc = ev.test_acc[role]
    bundle = DataBundle.load(data.path)
    export = log_export(load_model(chosen.checkpoint), bundle, chosen.run_id)
    tags = {
        "data.digest": data.digest,
        "kdflow.checkpoint": f"checkpoint/{Path(chosen.checkpoint).name}",
        "kdflow.role": role,
        "kdflow.choice": choice,
        "test_acc": f"{acc:.6f}",
        "mlflow_run_id": chosen.run_id,
        **export.tags(),
    }
    candidate = Candidate(chosen.model_uri, acc, ev.eval_digest, metric="test acc", tags=tags)
    decision = register_version(name, candidate, cfg.register.tolerance, run_id=parent_run_id)
    archs = {"teacher": cfg.teacher.arch, "baseline": baseline.arch, "student": student.arch}
    card = model_card(cfg, data, class_names(bundle), role, choice, archs, tuned, ev, export, decision)
    mlflow.MlflowClient().update_model_version(name, decision.version, description=card)
    return Registration(
        name=name,
        version=decision.version,
        role=role,
        choice=choice,
        test_acc=acc,
        champion=decision.promote,
        reason=decision.reason,
        comparable=decision.comparable,
        champion_before=decision.champion_before,
    )
