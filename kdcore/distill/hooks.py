"""Forward hooks that keep what named modules saw on the latest forward pass, so models stay unchanged."""

from __future__ import annotations

import torch
import torch.nn as nn


class FeatureTap:
    """Keeps the latest outputs of the modules named in `outputs` and inputs of those in `inputs`."""

    def __init__(self, model: nn.Module, outputs: list[str], inputs: list[str] = (), role: str = "model"):
        modules = dict(model.named_modules())
        missing = [n for n in [*outputs, *inputs] if n not in modules]
        if missing:
            known = ", ".join(n for n in modules if n) or "(none)"
            raise ValueError(f"the {role} has no module named {missing[0]!r}; choose among: {known}")
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._keep_output(n)) for n in outputs]
        self._handles += [modules[n].register_forward_pre_hook(self._keep_input(n)) for n in inputs]

    def _keep_output(self, name: str):
        def hook(module, args, output):
            self.outputs[name] = output

        return hook

    def _keep_input(self, name: str):
        def hook(module, args):
            self.inputs[name] = args[0]

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.outputs, self.inputs = {}, {}
