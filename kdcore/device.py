"""Pick the fastest available device unless told otherwise."""

from __future__ import annotations

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device=cuda but no CUDA device is visible; use runtime.device=auto or cpu")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("runtime.device=mps but MPS is not available; use runtime.device=auto or cpu")
    return torch.device(requested)
