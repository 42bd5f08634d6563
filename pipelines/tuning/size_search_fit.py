"""A size search and its costs are checked against the data before any training.

The smallest student of each searched architecture must build and run on one sample (resnet8x4 at width 1 has a
stem of no channels: it fails here, not in the fifth trial), and the cost the study optimises or budgets must be
measurable where the trials run. (A depth range holding no ResNet depth is refused with the config.)
"""

from __future__ import annotations

import torch

from kdcore.data import DataBundle
from kdcore.device import resolve_device
from pipelines.config.schema import ConfigError, PipelineConfig
from pipelines.tuning.student_cost import build_student, measure, one_sample, wanted_costs
from pipelines.tuning.study import searched_students, searches_size, smallest_student


def check_size_search(cfg: PipelineConfig, bundle: DataBundle) -> None:
    """ConfigError, in one line, if the smallest searched student cannot be built for this data, or a cost cannot be
    measured on this device."""
    costs = wanted_costs(cfg.tune.objectives, cfg.register.limit())
    if cfg.tune.n_trials == 0 or not (searches_size(cfg) or costs):
        return
    device = str(resolve_device(cfg.runtime.device))
    if "latency_ms" in costs and device == "cpu" and cfg.tune.n_workers > 1:
        raise ConfigError(
            f"latency_ms (tune.objectives / register.budget) cannot be measured with "
            f"tune.n_workers={cfg.tune.n_workers} on a CPU, where the other workers' training slows each "
            "measurement; set tune.n_workers=1 or use params, size_mb or flops"
        )
    for arch in searched_students(cfg):
        spec = smallest_student(cfg, arch)
        smallest = ", ".join(f"{k}={v}" for k, v in spec.options().items() if k in ("width", "depth"))
        try:
            with torch.no_grad():
                build_student(spec, bundle).eval()(one_sample(bundle))
        except Exception as e:  # noqa: BLE001 - any failure to build or run is the same bad input
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(
                f"the smallest searched student, {arch} {smallest}, cannot be built for input "
                f"{tuple(bundle.input_shape)} ({reason}); raise tune.space.width.low / tune.space.depth.low "
                "or drop it from tune.student_archs"
            ) from None
        try:
            measure(costs, spec, bundle, device)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(
                f"{', '.join(costs)} of {arch} cannot be measured on {device} ({e}); choose another cost in "
                "tune.objectives / register.budget"
            ) from None
