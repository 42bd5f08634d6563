"""Stage 7: the one and only use of the test split: teacher, baseline, student and champion side by side."""

from __future__ import annotations

import logging

import mlflow

from kdcore.data import DataBundle
from kdcore.evaluate import evaluate
from pipelines.checkpoint import checkpoint_tokenizer, load_model
from pipelines.config import PipelineConfig
from pipelines.results import Evaluation, PreparedData, TrainedModel
from pipelines.tracking import stage_run

log = logging.getLogger("kdflow")


def registered_name(cfg: PipelineConfig) -> str:
    return f"kdflow-{cfg.name}-student"


def champion_accuracy(
    cfg: PipelineConfig, test, tokenizer: dict | None = None, transform=None
) -> tuple[float | None, str | None, str | None]:
    """(accuracy, version, error) of the current champion on this test split; all None without one."""
    client = mlflow.MlflowClient()
    name = registered_name(cfg)
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None, None, None
    try:  # our own checkpoint artifact: rebuilt from the registry, loaded with weights_only=True
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=version.tags["kdflow.checkpoint"]
        )
        if checkpoint_tokenizer(path) != tokenizer:  # token ids of another vocabulary mean other words
            raise ValueError("its vocabulary differs from this data's")
        return evaluate(load_model(path), test, transform=transform)["acc"], str(version.version), None
    except Exception as e:  # a champion we cannot score on this split is kept, never silently replaced
        log.warning("evaluate: champion v%s cannot be scored on this test split (%s)", version.version, e)
        return None, str(version.version), f"{type(e).__name__}: {e}"


def evaluate_models(
    cfg: PipelineConfig, data: PreparedData, models: list[TrainedModel], parent_run_id: str
) -> Evaluation:
    bundle = DataBundle.load(data.path)
    test, normalise = bundle.test, bundle.view.normalise
    accs, params = {}, {}
    with stage_run("evaluation", parent_run_id) as run:
        for m in models:
            metrics = evaluate(load_model(m.checkpoint), test, transform=normalise)
            accs[m.role], params[m.role] = metrics["acc"], m.parameters
            mlflow.log_metrics({f"test/{m.role}_acc": metrics["acc"], f"test/{m.role}_loss": metrics["loss"]})
            mlflow.log_param(f"{m.role}.parameters", m.parameters)
        champion_acc, champion_version, champion_error = champion_accuracy(cfg, test, bundle.tokenizer, normalise)
        if champion_acc is not None:
            mlflow.log_metric("test/champion_acc", champion_acc)
        mlflow.log_param("data.digest", data.digest)
    for role, acc in accs.items():
        log.info("evaluate: %s test/acc %.4f (%d parameters)", role, acc, params[role])
    return Evaluation(
        run_id=run.info.run_id,
        test_acc=accs,
        parameters=params,
        champion_test_acc=champion_acc,
        champion_version=champion_version,
        champion_error=champion_error,
    )
