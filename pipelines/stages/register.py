"""Stage 8: register the student; the `champion` alias moves only to a better model."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from pipelines.config import PipelineConfig
from pipelines.results import Evaluation, PreparedData, Registration, TrainedModel
from pipelines.stages.evaluate import registered_name

log = logging.getLogger("kdflow")


def register_student(cfg: PipelineConfig, data: PreparedData, student: TrainedModel, ev: Evaluation) -> Registration:
    name = registered_name(cfg)
    client = mlflow.MlflowClient()
    tags = {"data.digest": data.digest, "kdflow.checkpoint": f"checkpoint/{Path(student.checkpoint).name}"}
    version = mlflow.register_model(student.model_uri, name, tags=tags)
    acc = ev.test_acc["student"]
    client.set_model_version_tag(name, version.version, "test_acc", f"{acc:.6f}")
    client.set_model_version_tag(name, version.version, "mlflow_run_id", student.run_id)
    if ev.champion_version is None:
        promote, reason = True, "no champion yet"
    elif ev.champion_error is not None:
        promote, reason = (
            False,
            f"champion v{ev.champion_version} could not be scored on this test split ({ev.champion_error}); kept",
        )
    elif acc > ev.champion_test_acc:
        promote, reason = (
            True,
            (
                f"test/acc {acc:.4f} beats champion v{ev.champion_version} ({ev.champion_test_acc:.4f}) "
                "on the same test split"
            ),
        )
    else:
        promote, reason = (
            False,
            f"test/acc {acc:.4f} does not beat champion v{ev.champion_version} ({ev.champion_test_acc:.4f})",
        )
    if promote:
        client.set_registered_model_alias(name, "champion", version.version)
    client.set_model_version_tag(name, version.version, "champion_decision", reason)
    log.info("register: %s v%s; champion %s: %s", name, version.version, "moved" if promote else "kept", reason)
    return Registration(name=name, version=str(version.version), champion=promote, reason=reason)
