"""Stage 7: the one and only use of the test split: teacher, baseline and student side by side, and the split's
digest, so the gate compares versions only on equal test data."""

from __future__ import annotations

import logging

import mlflow

from kdcore.data import DataBundle
from kdcore.evaluate import evaluate
from pipelines.checkpoint import load_model
from pipelines.config import PipelineConfig
from pipelines.gate import eval_digest
from pipelines.hf_teacher import teacher_view
from pipelines.results import Evaluation, PreparedData, TrainedModel
from pipelines.tracking import stage_run

log = logging.getLogger("kdflow")


def registered_name(cfg: PipelineConfig) -> str:
    return f"kdflow-{cfg.name}-student"


def evaluate_models(
    cfg: PipelineConfig, data: PreparedData, models: list[TrainedModel], parent_run_id: str
) -> Evaluation:
    bundle = DataBundle.load(data.path)
    test, normalise = bundle.test, bundle.view.normalise
    accs, params = {}, {}
    with stage_run("evaluation", parent_run_id) as run:
        for m in models:
            split = teacher_view(cfg, bundle).test if m.role == "teacher" else test  # hf: its own tokenizer's ids
            metrics = evaluate(load_model(m.checkpoint), split, transform=normalise)
            accs[m.role], params[m.role] = metrics["acc"], m.parameters
            mlflow.log_metrics({f"test/{m.role}_acc": metrics["acc"], f"test/{m.role}_loss": metrics["loss"]})
            mlflow.log_param(f"{m.role}.parameters", m.parameters)
        digest = eval_digest(test, tokenizer=bundle.tokenizer)
        mlflow.log_params({"data.digest": data.digest, "eval.digest": digest})
    for role, acc in accs.items():
        log.info("evaluate: %s test/acc %.4f (%d parameters)", role, acc, params[role])
    return Evaluation(
        run_id=run.info.run_id,
        test_acc=accs,
        parameters=params,
        eval_digest=digest,
    )
