"""Stage 8: register the student; the `champion` alias moves only to a better model."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.registry import champion_gate, register_version
from pipelines.results import Evaluation, PreparedData, Registration, TrainedModel
from pipelines.stages.evaluate import registered_name


def register_student(cfg: PipelineConfig, data: PreparedData, student: TrainedModel, ev: Evaluation) -> Registration:
    name = registered_name(cfg)
    acc = ev.test_acc["student"]
    tags = {
        "data.digest": data.digest,
        "kdflow.checkpoint": f"checkpoint/{Path(student.checkpoint).name}",
        "test_acc": f"{acc:.6f}",
        "mlflow_run_id": student.run_id,
    }
    decision = champion_gate(acc, ev.champion_test_acc, ev.champion_version, ev.champion_error)
    version = register_version(student.model_uri, name, tags, decision)
    return Registration(name=name, version=version, champion=decision[0], reason=decision[1])
