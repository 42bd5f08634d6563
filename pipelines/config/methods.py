"""Config <-> KD method: each method's configured values and search ranges, under one naming rule.

A method's parameter is named by its path under `distill`: KD keeps the spine's flat
`temperature` / `alpha`, every other method its own section (`dkd.beta`, `crd.weight`, ...).
The same names are Optuna parameters, MLflow trial params and keys of the best parameters.
"""

from __future__ import annotations

from typing import Any

from kdcore.distill import DISTILLERS, Distiller, LayerChoice, build_distiller
from pipelines.config.schema import PipelineConfig, Range

KD_PARAMS = ("temperature", "alpha")


def method_values(cfg: PipelineConfig, method: str) -> dict[str, Any]:
    """All configured values of `method`, by parameter name."""
    if method == "kd":
        return {name: getattr(cfg.distill, name) for name in KD_PARAMS}
    section = getattr(cfg.distill, method)
    return {f"{method}.{k}": v for k, v in section.model_dump().items()}


def method_space(cfg: PipelineConfig, method: str) -> dict[str, Range]:
    """The search range of each tuned parameter of `method`."""
    if method == "kd":
        return {name: getattr(cfg.tune.space, name) for name in KD_PARAMS}
    section = getattr(cfg.tune.space, method)
    return {f"{method}.{k}": getattr(section, k) for k in type(section).model_fields}


def searched_methods(cfg: PipelineConfig) -> list[str]:
    return list(dict.fromkeys(cfg.tune.methods)) or [cfg.distill.method]


def needs_teacher_model(method: str) -> bool:
    return DISTILLERS[method].needs_features


def build_method(cfg: PipelineConfig, method: str, params: dict[str, Any] | None = None) -> Distiller:
    """The distiller for `method`: configured values, overridden by `params` (e.g. a trial's or the best)."""
    values = method_values(cfg, method)
    values.update({k: v for k, v in (params or {}).items() if k in values})
    kwargs = {name.split(".", 1)[-1]: v for name, v in values.items()}
    if needs_teacher_model(method):
        layers = cfg.distill.layers
        kwargs["layers"] = LayerChoice(
            layers.teacher, layers.student, layers.teacher_embedding, layers.student_embedding
        )
    return build_distiller(method, **kwargs)
