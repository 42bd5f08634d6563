"""The loss of K stacked members that share one logit method and differ in its `member_params`.

Each method computes its own terms for all K at once (`Distiller.member_terms`, beside its `loss_terms` in its
file); this holds the members' values as [K] tensors and drops members as they leave the group.
"""

from __future__ import annotations

import torch

from kdcore.distill.base import Batch, Distiller


class MemberLosses:
    def __init__(self, distillers: list[Distiller]):
        method = type(distillers[0])
        if any(type(d) is not method for d in distillers):
            raise ValueError("stacked members must share one distillation method; group trials by method")
        if method.member_params is None:
            raise ValueError(
                f"{method.__name__} cannot train stacked members (it reads features or keeps its own state); "
                "train its trials one at a time"
            )
        fixed = [settings_of(d, exclude=method.member_params) for d in distillers]
        if any(f != fixed[0] for f in fixed):
            raise ValueError(
                f"stacked {method.__name__} members may differ only in {', '.join(method.member_params) or 'nothing'}"
            )
        self.template = distillers[0]  # the settings members share (DKD's warm-up)
        self.values = {
            name: torch.tensor([float(getattr(d, name)) for d in distillers]) for name in method.member_params
        }

    def to(self, device: torch.device) -> MemberLosses:
        self.values = {k: v.to(device) for k, v in self.values.items()}
        return self

    def select(self, keep: torch.Tensor) -> None:
        self.values = {k: v[keep.to(v.device)] for k, v in self.values.items()}

    def __call__(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Each term of the method per member, [K], from the members' logits [K, B, C] on one shared batch."""
        return self.template.member_terms(logits, batch, self.values)


def settings_of(distiller: Distiller, exclude: tuple[str, ...]) -> dict:
    """A distiller's plain settings (floats, ints, strings), but those in `exclude`."""
    return {
        k: v
        for k, v in vars(distiller).items()
        if not k.startswith("_") and k != "training" and k not in exclude and isinstance(v, (int, float, str, bool))
    }
