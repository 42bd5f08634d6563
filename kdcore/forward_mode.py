"""How forward passes run on the device: mixed precision (autocast) and memory format.

On CUDA, bf16 autocast and channels-last convolutions are the cheap wins for small image models;
on the CPU the defaults resolve to float32 and contiguous tensors, bit for bit the plain path.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ForwardMode:
    autocast: torch.dtype | None = None  # dtype of autocast regions; None: plain float32
    channels_last: bool = False  # model weights and 4-D inputs in NHWC

    def context(self, device: torch.device | str):
        """Autocast around a forward pass; nothing at all in float32."""
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=self.autocast)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def prepare(self, model: nn.Module) -> nn.Module:
        """Puts the model's 4-D weights in channels-last (in place) when asked; returns it."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """ "auto": bf16 where CUDA runs it natively (Ampere and newer; bf16 needs no loss scaling), float32 elsewhere."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else None
    raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")


def use_channels_last(setting: bool | str, device: torch.device, input_dims: int) -> bool:
    """Only 4-D (image) inputs have a channels-last layout; "auto" turns it on for them on CUDA."""
    if setting == "auto":
        return device.type == "cuda" and input_dims == 4
    if isinstance(setting, bool):
        return setting and input_dims == 4
    raise ValueError(f"unknown channels_last setting {setting!r}; choose True, False or 'auto'")


def forward_mode(precision: str, channels_last: bool | str, device: torch.device, input_dims: int) -> ForwardMode:
    return ForwardMode(autocast_dtype(precision, device), use_channels_last(channels_last, device, input_dims))
