"""How big and how fast a model is where it runs: the evidence of why one distils.

Each model is timed on the same inputs, one after the other in one process, within a time budget: the latency of one
sample (median and p95 over repeated calls after a warm-up) and the throughput at batch 256, from what a user
has (8-bit images through the train split's normalisation, or raw strings through the tokenizer).
"""

from __future__ import annotations

import io
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

THROUGHPUT_BATCH = 256
WARMUP_CALLS = 3


@dataclass(frozen=True)
class Timing:
    latency_ms_median: float
    latency_ms_p95: float
    throughput: float  # samples (texts) per second at batch THROUGHPUT_BATCH
    latency_calls: int
    throughput_calls: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def weights_megabytes(model: nn.Module) -> float:
    """Size of the saved weights (torch.save of the state dict): what a deployment ships, in MB (10^6 bytes)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getbuffer().nbytes / 1e6


def device_name(device: torch.device) -> str:
    """What absolute times were measured on: the GPU's name, or the CPU's model and the threads torch used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = models[0] if models else cpu
    return f"{cpu}, torch threads: {torch.get_num_threads()}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_model(
    model: nn.Module,
    forward: Callable[[nn.Module, object], torch.Tensor],
    one: object,
    batch: object,
    batch_size: int,
    device: torch.device,
    seconds: float,
) -> Timing:
    """`forward(model, inputs)` from raw inputs to logits; `one` a single sample, `batch` `batch_size` samples.

    Half of `seconds` goes to the latency calls, half to the throughput calls; each part makes at least a few calls,
    so a slow model may run past the budget by a few calls, never by a whole loop.
    """
    model.eval()
    for _ in range(WARMUP_CALLS):
        forward(model, one)
    forward(model, batch)
    synchronize(device)

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds / 2
    while len(latencies) < 5 or (time.perf_counter() < deadline and len(latencies) < 1000):
        started = time.perf_counter()
        forward(model, one)
        synchronize(device)
        latencies.append(time.perf_counter() - started)

    calls, started = 0, time.perf_counter()
    deadline = started + seconds / 2
    while calls < 2 or time.perf_counter() < deadline:
        forward(model, batch)
        synchronize(device)  # the loop measures finished work, not a queue of launched kernels
        calls += 1
    elapsed = time.perf_counter() - started
    ms = 1000 * np.asarray(latencies)
    return Timing(
        latency_ms_median=float(np.median(ms)),
        latency_ms_p95=float(np.percentile(ms, 95)),
        throughput=calls * batch_size / elapsed,
        latency_calls=len(latencies),
        throughput_calls=calls,
    )
