"""The input a pretrained network expects, made from the input the data gives (the student's).

A pretrained teacher and its student read the same stored images, normalised once for the student at the
student's resolution. The adapter turns that batch into what the teacher's weights were trained on: back to
[0, 1], grey repeated to RGB, resized and centre-cropped like the weights' own preprocessing, normalised with
the weights' mean/std. It runs inside the teacher (a forward pre-hook), so the teacher's logits stay one row
per stored example and can be cached, and module names stay those of the plain network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputAdapter:
    data_mean: tuple[float, ...]  # the data's normalisation, undone
    data_std: tuple[float, ...]
    resize: int  # side after resizing (torchvision's resize_size), then
    crop: int  # the centre crop the network sees (crop_size)
    mean: tuple[float, ...] = IMAGENET_MEAN  # the weights' normalisation
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.crop, self.crop)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = affine(x.float(), self.data_mean, self.data_std, undo=True)  # [0, 1] pixels
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)  # grey -> RGB, as PIL's convert("RGB") would
        size = x.shape[-1]
        if size != self.resize:  # antialias only when shrinking, as torchvision's resize does
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", antialias=self.resize < size)
        top = (self.resize - self.crop) // 2
        x = x[..., top : top + self.crop, top : top + self.crop]
        return affine(x, self.mean, self.std, undo=False)

    def state_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> InputAdapter:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in state.items()})


@lru_cache(maxsize=64)
def _channel_tensors(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    """Made once per device: a host-to-GPU copy in every batch would stall the GPU."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def affine(x: torch.Tensor, mean, std, *, undo: bool) -> torch.Tensor:
    m, s = _channel_tensors(tuple(mean), tuple(std), x.device)
    return x * s + m if undo else (x - m) / s


class _PreHook:
    def __init__(self, adapter: InputAdapter):
        self.adapter = adapter

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (self.adapter(args[0]), *args[1:])


def adapt_input(model: nn.Module, adapter: InputAdapter) -> nn.Module:
    """`model` now takes the data's inputs; its weights and module names are unchanged."""
    model.input_adapter = adapter  # a plain attribute: no parameters, nothing in the state dict
    model.register_forward_pre_hook(_PreHook(adapter))
    return model
