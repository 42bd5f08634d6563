"""Pretrained weights for torchvision's models: by torchvision's own name, or from a saved state dict.

A name is a member of the architecture's weights enum (`IMAGENET1K_V1`, `DEFAULT`) or torchvision's full
spelling (`ResNet18_Weights.IMAGENET1K_V1`); its file comes from the usual cache (TORCH_HOME/hub/checkpoints),
downloaded by torchvision with its hash check when absent. A path is a file written by
torch.save(model.state_dict()) (a {"state_dict": ...} or {"model": ...} wrapper and DDP's "module." prefix
are accepted), read with weights_only=True. Every error is a ValueError with one sentence.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from kdcore.models.input_adapter import IMAGENET_MEAN, IMAGENET_STD
from kdcore.models.torchvision_models import PRETRAINABLE


@dataclass(frozen=True)
class Preprocessing:
    """What the weights were trained on: resize to `resize`, centre-crop `crop`, normalise with mean/std."""

    resize: int
    crop: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def at(self, crop: int) -> Preprocessing:
        """The same preprocessing at another crop size (the same resize-to-crop ratio)."""
        return Preprocessing(round(crop * self.resize / self.crop), crop, self.mean, self.std)


IMAGENET_DEFAULT = Preprocessing(256, 224)  # torchvision's ImageNet classification preset


def is_path(source: str) -> bool:
    return source.endswith((".pt", ".pth")) or "/" in source or "\\" in source


def check_pretrainable(arch: str) -> None:
    if arch not in PRETRAINABLE:
        raise ValueError(
            f"{arch} has no pretrained weights (they exist for torchvision's {', '.join(sorted(PRETRAINABLE))}); "
            "choose one of those as teacher.arch or drop teacher.pretrained"
        )


def named_weights(arch: str, name: str):
    """torchvision's weights enum member for `arch` called `name`."""
    import torchvision.models as tvm

    check_pretrainable(arch)
    enum = tvm.get_model_weights(arch)
    prefix, dot, member = name.rpartition(".")
    if dot and prefix != enum.__name__:
        raise ValueError(
            f"weights {name} are not {arch}'s; {arch} takes {enum.__name__}.<{'|'.join(enum.__members__)}>"
        )
    if member not in enum.__members__:
        close = difflib.get_close_matches(member, list(enum.__members__), n=3, cutoff=0.3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ValueError(f"unknown weights {name!r} for {arch}; choose one of {', '.join(enum.__members__)}{hint}")
    return enum[member]


def preprocessing_of(weights) -> Preprocessing:
    """Read from the weights' own metadata (their transforms preset)."""
    t = weights.transforms()
    return Preprocessing(int(t.resize_size[0]), int(t.crop_size[0]), tuple(t.mean), tuple(t.std))


def cache_file(weights) -> Path:
    """Where torchvision keeps (or will download) the file of `weights`: TORCH_HOME/hub/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


class WeightsMissing(ValueError):
    """A named weights file is not in the cache and cannot be downloaded."""


def fetch_named(weights, download: bool, switch: str = "downloads are off") -> Path:
    """The cached file of `weights`, downloaded (hash checked) when absent and `download` allows."""
    file = cache_file(weights)
    if file.is_file():
        return file
    where = f"put {file.name} (from {weights.url}) in {file.parent} (TORCH_HOME/hub/checkpoints)"
    if not download:
        raise WeightsMissing(f"{weights} needs {file.name}, which is not in the cache and {switch}; {where}")
    try:
        weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as e:  # no network (URLError), a refused connection, a wrong hash (RuntimeError)
        file.unlink(missing_ok=True)
        raise WeightsMissing(
            f"{weights} needs {file.name}, which is not in the cache and could not be downloaded "
            f"({type(e).__name__}); {where}"
        ) from None
    return file


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained weights {path} do not exist; check the path")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} cannot be read as weights ({type(e).__name__}); save it with torch.save(model.state_dict())"
        ) from None
    if isinstance(blob, dict):
        for key in ("state_dict", "model"):  # training scripts' wrappers (torchvision's references: "model")
            if isinstance(blob.get(key), dict):
                blob = blob[key]
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path} holds no state dict of tensors; save it with torch.save(model.state_dict())")
    return {k.removeprefix("module."): v for k, v in blob.items()}


def head_name(model: nn.Module) -> str:
    """The classifier head: the model's last nn.Linear (fc, classifier.N)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear classifier head to replace")
    return linears[-1]


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str) -> None:
    """Every tensor but the head's from `state`; the head keeps its fresh init for the data's classes."""
    head = head_name(model) + "."
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    wrong = [k for k in own if k in given and tuple(given[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        problem = (
            f"{len(wrong)} tensors of another shape (e.g. {wrong[0]}: {tuple(given[wrong[0]].shape)} "
            f"vs {tuple(own[wrong[0]].shape)})"
            if wrong
            else f"{len(missing)} of its tensors missing (e.g. {missing[0]})"
            if missing
            else f"{len(unexpected)} tensors {arch} does not have (e.g. {unexpected[0]})"
        )
        raise ValueError(
            f"the weights in {source} do not fit {arch} ({problem}); give weights saved from a torchvision {arch} "
            "or set teacher.arch to the model they come from"
        )
    model.load_state_dict(given, strict=False)
