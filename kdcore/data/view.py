"""How stored pixels become model inputs: scale, per-channel normalisation, and training-time augmentation.

Images stay in memory as uint8 (N, C, H, W); each batch is converted on the device, so an epoch is
never dominated by per-sample decoding. Augmentation is vectorised over the batch and seeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

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
        gain, shift = channel_affine(self.mean, self.std, self.scale, x.device)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.addcmul(shift.view(shape), x.float(), gain.view(shape))  # (x * scale - mean) / std, in one pass

    def sample_params(self, n: int, generator: torch.Generator) -> ViewParams:
        """The random choices of `n` training views, drawn on the generator's device in `augment`'s order."""
        dev = generator.device
        zeros = torch.zeros(n, dtype=torch.int16, device=dev)
        dy = dx = zeros
        if self.crop_padding:
            dy = torch.randint(0, 2 * self.crop_padding + 1, (n,), generator=generator, device=dev).to(torch.int16)
            dx = torch.randint(0, 2 * self.crop_padding + 1, (n,), generator=generator, device=dev).to(torch.int16)
        flip = torch.rand(n, generator=generator, device=dev) < 0.5 if self.flip else zeros.bool()
        return ViewParams(dy, dx, flip)

    def apply(self, x: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """The training views of a batch of stored images that `params` describe, normalised; no randomness."""
        params = params.to(x.device)
        if self.crop_padding:
            x = crop(x, self.crop_padding, params.dy, params.dx)
        if self.flip:
            x = torch.where(params.flip[:, None, None, None], x.flip(3), x)
        return self.normalise(x)

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random training view of a batch of stored images, normalised; reproducible under `generator`."""
        return self.apply(x, self.sample_params(len(x), generator))

    def state_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> InputView:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in state.items()})


@lru_cache(maxsize=64)
def channel_affine(mean: tuple[float, ...], std: tuple[float, ...], scale: float, device: torch.device):
    """Per-channel gain and shift on `device`, made once: a host-to-GPU copy in every batch would stall the GPU."""
    mean_t, std_t = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    return (scale / std_t).float().to(device), (-mean_t / std_t).float().to(device)


@dataclass(frozen=True)
class ViewParams:
    """What made each augmented view: crop offsets into the zero-padded image and a left-right flip.

    Any leading shape: (N,) for a batch, (K, N) for K views of every sample; index it like a tensor.
    int16 offsets: they reach 2 * padding, beyond uint8 for images over 1,000 pixels wide.
    """

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor

    def __getitem__(self, index) -> ViewParams:
        return ViewParams(self.dy[index], self.dx[index], self.flip[index])

    def to(self, device) -> ViewParams:
        return ViewParams(self.dy.to(device), self.dx.to(device), self.flip.to(device))

    @staticmethod
    def stack(views: list[ViewParams]) -> ViewParams:
        return ViewParams(*(torch.stack([getattr(v, f) for v in views]) for f in ("dy", "dx", "flip")))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"dy": self.dy, "dx": self.dx, "flip": self.flip}


def crop(x: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad (N, C, H, W) by `padding` on each side and cut the (H, W) window at offset (dy[i], dx[i]) of image i."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy, dx = dy.long(), dx.long()
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
