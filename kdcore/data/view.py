"""How stored pixels become model inputs: scale, per-channel normalisation, and training-time augmentation.

Images stay in memory as uint8 (N, C, H, W); each batch is converted on the device, so an epoch is
never dominated by per-sample decoding. Augmentation is vectorised over the batch and seeded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class InputView:
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1.0  # stored value -> [0, 1], e.g. 1/255 for 8-bit images
    crop_padding: int = 0  # random crop of the original size after zero-padding each side (0: no crop)
    flip: bool = False  # random horizontal flip with probability 1/2

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Stored values (any dtype) -> float32 model inputs; no randomness."""
        if self.scale == 1.0 and set(self.mean) == {0.0} and set(self.std) == {1.0}:
            return x  # the identity view: token ids stay integers
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(shape)
        return (x.float() * self.scale - mean) / std

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random training view of a batch of stored images, normalised; reproducible under `generator`."""
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return self.normalise(x)

    def state_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "InputView":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in state.items()})


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad (N, C, H, W) by `padding` on each side and cut an (H, W) window at a random offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(x), generator=generator, device=generator.device).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
