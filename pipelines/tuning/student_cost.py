"""What a student costs to keep and to run: parameters, size on disk, FLOPs per sample, latency at batch 1.

A trial's cost depends only on the student's architecture and size (and, for latency, the device), not on its
weights, so each is measured on a freshly built model before training. Latency is a measurement, slow and noisy:
it is measured once per (architecture, size, device) and kept in the study, so trials of the same size (in any
worker) reuse it.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdcore.data import DataBundle
from kdcore.models import build_model, count_parameters
from pipelines.config.schema import ModelConfig
from pipelines.tracking.model_timing import weights_megabytes

MEASURES = ("params", "size_mb", "flops", "latency_ms")
UNITS = {"params": "parameters", "size_mb": "MB", "flops": "FLOPs per sample", "latency_ms": "ms at batch 1"}
LATENCY_WARMUP, LATENCY_CALLS = 3, 15
latency_measurements: list[str] = []  # the keys measured in this process (tests count them)


def size_key(spec: ModelConfig) -> str:
    """`mlp-width32-depth2`: the architecture and the options that set its size."""
    return "-".join([spec.arch, *(f"{k}{v}" for k, v in sorted(spec.options().items()))])


def build_student(spec: ModelConfig, bundle: DataBundle) -> torch.nn.Module:
    return build_model(spec.arch, bundle.input_shape, bundle.num_classes, **spec.options(), **bundle.model_options())


def one_sample(bundle: DataBundle) -> torch.Tensor:
    return bundle.view.normalise(bundle.train.x[:1])


def flops(model: torch.nn.Module, sample: torch.Tensor) -> float:
    """FLOPs of one forward pass on one sample (torch's counter: matmuls and convolutions, 2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(sample)
    return float(counter.get_total_flops())


def latency_ms(model: torch.nn.Module, sample: torch.Tensor, device: str) -> float:
    """Median wall time of a forward pass at batch 1 on `device`, in milliseconds, after a few warm-up calls."""
    model, sample = model.eval().to(device), sample.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(LATENCY_WARMUP + LATENCY_CALLS):
            sync()
            started = time.perf_counter()
            model(sample)
            sync()
            if i >= LATENCY_WARMUP:
                times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def measure(
    wanted: list[str], spec: ModelConfig, bundle: DataBundle, device: str, known: dict[str, float] | None = None
) -> dict[str, float]:
    """The `wanted` costs of a student of `spec`; `known` holds latencies already measured, by cache key."""
    if not wanted:
        return {}
    model = build_student(spec, bundle)
    sample = one_sample(bundle)
    out: dict[str, float] = {}
    for name in wanted:
        if name == "params":
            out[name] = float(count_parameters(model))
        elif name == "size_mb":
            out[name] = weights_megabytes(model)  # as the evaluate stage measures it
        elif name == "flops":
            out[name] = flops(model, sample)
        elif name == "latency_ms":
            key = latency_key(spec, device)
            if known is None or key not in known:
                latency_measurements.append(key)
                value = latency_ms(model, sample, device)
                if known is not None:
                    known[key] = value
            out[name] = known[key] if known is not None else value
        else:
            raise ValueError(f"unknown cost {name!r}; choose one of {', '.join(MEASURES)}")
    return out


def latency_key(spec: ModelConfig, device: str) -> str:
    return f"latency_ms/{size_key(spec)}/{device}"


def wanted_costs(objectives: list[str], budget: tuple[str, float] | None) -> list[str]:
    """The costs a trial must know: its second objective and its budget's."""
    return list(dict.fromkeys([*objectives[1:], *([budget[0]] if budget else [])]))
