"""Stage 7: the one and only use of the test split: teacher, baseline and student side by side, and the split's
digest, so the gate compares versions only on equal test data.

Besides accuracy, the evidence of why one distils: each model's saved size, and (evaluate.timing) its latency and
throughput on the run's device, measured one after the other in this process on the same inputs; per-class
figures (confusion matrix, precision / recall / F1) are artifacts of the evaluation run.
"""

from __future__ import annotations

import logging

import mlflow
import torch
import torch.nn.functional as F

from kdcore.data import DataBundle
from kdcore.device import resolve_device
from kdcore.evaluate import predict_logits
from kdcore.text.tokenizer import Tokenizer
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import PipelineConfig
from pipelines.registry.gate import eval_digest
from pipelines.registry.registration import class_names
from pipelines.results import Evaluation, PreparedData, TrainedModel
from pipelines.teachers.hf_teacher import teacher_view
from pipelines.tracking.class_report import log_class_report
from pipelines.tracking.dataset_input import log_dataset
from pipelines.tracking.model_timing import THROUGHPUT_BATCH, Timing, device_name, time_model, weights_megabytes
from pipelines.tracking.runs import stage_run

log = logging.getLogger("kdflow")


def registered_name(cfg: PipelineConfig) -> str:
    return f"kdflow-{cfg.name}-student"


def evaluate_models(
    cfg: PipelineConfig, data: PreparedData, models: list[TrainedModel], parent_run_id: str
) -> Evaluation:
    bundle = DataBundle.load(data.path)
    test, normalise = bundle.test, bundle.view.normalise
    classes = class_names(bundle)
    accs, params, sizes, timings = {}, {}, {}, {}
    device = resolve_device(cfg.runtime.device)
    timed = TimedInputs(bundle, device) if cfg.evaluate.timing else None
    with stage_run("evaluation", parent_run_id) as run:
        log_dataset(cfg, data, context="test")
        for m in models:
            model = load_model(m.checkpoint)
            split = teacher_view(cfg, bundle).test if m.role == "teacher" else test  # hf: its own tokenizer's ids
            logits = predict_logits(model, split.x, transform=normalise)
            loss, acc = F.cross_entropy(logits, split.y).item(), (logits.argmax(1) == split.y).float().mean().item()
            accs[m.role], params[m.role], sizes[m.role] = acc, m.parameters, weights_megabytes(model)
            mlflow.log_metrics(
                {f"test/{m.role}_acc": acc, f"test/{m.role}_loss": loss, f"size/{m.role}_mb": sizes[m.role]}
            )
            mlflow.log_param(f"{m.role}.parameters", m.parameters)
            log_class_report(m.role, test.y.numpy(), logits.argmax(1).numpy(), classes)
            if timed is not None:
                timing = timed.measure(model.to(device), cfg.evaluate.timing_seconds)
                timings[m.role] = timing.as_dict()
                mlflow.log_metrics(timing_metrics(m.role, timing))
        digest = eval_digest(test, tokenizer=bundle.tokenizer)
        mlflow.log_params({"data.digest": data.digest, "eval.digest": digest})
        where = device_name(device) if timed is not None else ""
        if timed is not None:
            mlflow.log_params({"evaluate.device": str(device), "evaluate.device_name": where})
            mlflow.set_tag("evaluate.device_name", where)
        mlflow.log_metrics(ratio_metrics(sizes, timings))
    for role, acc in accs.items():
        speed = "" if role not in timings else f", {timings[role]['latency_ms_median']:.3f} ms/sample"
        log.info("evaluate: %s test/acc %.4f (%d parameters, %.3f MB%s)", role, acc, params[role], sizes[role], speed)
    return Evaluation(
        run_id=run.info.run_id,
        test_acc=accs,
        parameters=params,
        eval_digest=digest,
        size_mb=sizes,
        timing=timings,
        device_name=where,
    )


def timing_metrics(role: str, timing: Timing) -> dict[str, float]:
    return {
        f"latency/{role}_ms_median": timing.latency_ms_median,
        f"latency/{role}_ms_p95": timing.latency_ms_p95,
        f"throughput/{role}_per_s": timing.throughput,
    }


def ratio_metrics(sizes: dict[str, float], timings: dict[str, dict[str, float]]) -> dict[str, float]:
    """Teacher over student: how many times smaller and faster the student is (> 1: the student wins)."""
    if "teacher" not in sizes or "student" not in sizes:
        return {}
    out = {"ratio/size": sizes["teacher"] / sizes["student"]}
    if "teacher" in timings and "student" in timings:
        t, s = timings["teacher"], timings["student"]
        out["ratio/latency"] = t["latency_ms_median"] / s["latency_ms_median"]
        out["ratio/throughput"] = s["throughput"] / t["throughput"]
    return out


class TimedInputs:
    """The same inputs for every model, from what a user has: 8-bit images through the train split's
    normalisation on the device, or raw strings through the tokenizer (texts/s then include tokenising)."""

    def __init__(self, bundle: DataBundle, device: torch.device):
        self.device = device
        x = bundle.test.x
        rows = x.repeat((THROUGHPUT_BATCH + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))[:THROUGHPUT_BATCH]
        if bundle.tokenizer is not None:
            self.tokenizer = Tokenizer.from_state_dict(bundle.tokenizer)
            texts = [self.tokenizer.decode(row) or "unknown" for row in rows]
            self.one, self.batch = texts[:1], texts
        else:
            self.tokenizer, self.normalise = None, bundle.view.normalise
            self.one, self.batch = rows[:1].clone(), rows

    def forward(self, model: torch.nn.Module, inputs) -> torch.Tensor:
        if self.tokenizer is not None:
            ids, _ = self.tokenizer.encode(inputs)
            return model(ids.to(self.device))
        return model(self.normalise(inputs.to(self.device)))

    def measure(self, model: torch.nn.Module, seconds: float) -> Timing:
        return time_model(model, self.forward, self.one, self.batch, len(self.batch), self.device, seconds)
