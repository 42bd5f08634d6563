"""Train one model in its own nested MLflow run: params, per-epoch metrics, checkpoint, logged model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import torch

from kdcore.data import DataBundle
from kdcore.device import resolve_device
from kdcore.distill import Distiller
from kdcore.models import build_model, count_parameters
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit
from pipelines.cache.checkpoint import save_model
from pipelines.config.schema import ModelConfig, PipelineConfig, TrainConfig
from pipelines.registry.registration import ServedInput, log_served_model
from pipelines.results import TrainedModel
from pipelines.tracking.runs import EpochLogger, loggable_params, stage_run
from pipelines.training.progress import report_epoch

log = logging.getLogger("kdflow")


def initial_model(spec: ModelConfig, bundle: DataBundle, download: bool) -> tuple[torch.nn.Module, dict]:
    """The model before training, and the build options its checkpoint records."""
    if spec.arch == "hf":  # teachers only: a Hugging Face classifier reading its own tokenizer's ids
        from pipelines.teachers.hf_teacher import hf_teacher

        return hf_teacher(spec, bundle, download)
    if getattr(spec, "pretrained", None):  # teachers only
        from pipelines.teachers.pretrained import pretrained_teacher

        return pretrained_teacher(spec, bundle, download)
    options = {**spec.options(), **bundle.model_options()}  # text models: + vocab_size
    return build_model(spec.arch, bundle.input_shape, bundle.num_classes, **options), options


def settings_for(train: TrainConfig, cfg: PipelineConfig, **overrides) -> TrainSettings:
    values = dict(
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        weight_decay=train.weight_decay,
        optimizer=train.optimizer,
        momentum=train.momentum,
        schedule=train.schedule,
        early_stop_patience=train.early_stop_patience,
        seed=cfg.runtime.seed,
        device=str(resolve_device(cfg.runtime.device)),
        precision=cfg.runtime.precision,
        channels_last=cfg.runtime.channels_last,
        compile=cfg.runtime.compile,
        backbone_lr_factor=getattr(train, "backbone_lr_factor", 1.0),  # teachers only
        freeze_backbone_epochs=getattr(train, "freeze_backbone_epochs", 0),
    )
    values.update(overrides)
    return TrainSettings(**values)


def progress(role: str, epochs: int):
    def report(epoch: int, metrics: dict[str, float]) -> None:
        val = f"  val/acc {metrics['val/acc']:.4f}" if "val/acc" in metrics else ""
        log.debug("%s: epoch %d/%d  train/loss %.4f%s", role, epoch, epochs, metrics["train/loss"], val)  # -v
        report_epoch(role, epoch, epochs, metrics)

    return report


def train_model(
    role: str,
    spec: ModelConfig,
    settings: TrainSettings,
    cfg: PipelineConfig,
    bundle: DataBundle,
    distiller: Distiller,
    parent_run_id: str,
    checkpoint: Path,
    *,
    soft_targets: SoftTargets = SoftTargets(),
    extra_params: dict | None = None,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> TrainedModel:
    """`wrap` puts the model in a training harness (DDP) for `fit`; the unwrapped model is what gets saved."""
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    model, options = initial_model(spec, bundle, cfg.data.download)
    n_params = count_parameters(model)
    with stage_run(role, parent_run_id) as run:
        mlflow.log_params({**loggable_params(cfg), **(extra_params or {})})
        mlflow.log_params(
            {
                "model.parameters": n_params,
                "model.device": settings.device,
                "fit.samples": len(bundle.train),
                "fit.epochs": settings.epochs,  # a refit's may differ from the configured count
            }
        )
        report = progress(role, settings.epochs)
        with EpochLogger(run.info.run_id) as logger:  # its exit waits for the background metric writes

            def on_epoch(epoch, metrics):
                logger(epoch, metrics)
                report(epoch, metrics)

            history = fit(
                wrap(model) if wrap else model,
                bundle.train,
                bundle.val,
                settings,
                distiller,
                soft_targets=soft_targets,
                on_epoch=on_epoch,
                view=bundle.view,
            )
        val = f", val/acc {history[-1]['val/acc']:.4f}" if "val/acc" in history[-1] else ""
        log.info(
            "%s: %s trained %d epochs in %.1f s%s", role, spec.arch, len(history), time.perf_counter() - started, val
        )
        model.cpu().eval()
        save_model(model, spec.arch, bundle.input_shape, bundle.num_classes, options, checkpoint, bundle.tokenizer)
        # raw images / strings in; a Hugging Face teacher is not served (its pyfunc would need transformers)
        info = None if spec.arch == "hf" else log_served_model(checkpoint, ServedInput.of_bundle(bundle))
        mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
        mlflow.log_metrics({"parameters": n_params, "best_epoch": history.kept_epoch, "epochs_run": len(history)})
    return TrainedModel(
        role=role,
        arch=spec.arch,
        checkpoint=str(checkpoint),
        run_id=run.info.run_id,
        model_uri=info and info.model_uri,
        parameters=n_params,
        val_acc=history.kept.get("val/acc"),
        best_epoch=history.kept_epoch,
        seconds=time.perf_counter() - started,
    )
