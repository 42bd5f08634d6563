"""K models of one architecture as one: every parameter and buffer stacked along a new first (member) dimension.

One forward pass gives all K members' logits, [K, B, C], so small students train K at a time for about the
price of one. Two ways to run it:
- grouped (models of Linear, Conv2d and BatchNorm layers, and parameter-free ones): the members' channels sit
  side by side, [B, K*C, ...], member by member; the first layer is one K-times-wider layer on the shared input,
  later convolutions are grouped (groups x K), later linear layers one batched matmul, BatchNorm one layer of K*C
  channels (per-member statistics, by construction). Every op is one native kernel: no per-op dispatch cost.
- vmap (any other model): `torch.func.vmap` over `functional_call`; general, but each op costs a few times more.
Which one a model gets is measured, not assumed: the grouped forward must reproduce each member's own outputs
on a sample batch, or the group uses vmap.
The parameters live in one flat tensor, laid out parameter by parameter as [K, *shape] blocks, and so do their
gradients, so the optimiser updates every member with a handful of element-wise ops. Dropout on the shared
input (an MLP's input dropout, before its first layer) draws one mask for all members (common random numbers);
after the first layer each member draws its own. BatchNorm's running statistics are stacked
buffers [K, C], updated in place per member.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap


class StackedModels:
    def __init__(self, models: list[nn.Module], sample: torch.Tensor | None = None):
        """`sample`: a few model-ready inputs on which the grouped forward is checked against each member's own."""
        if len({type(m) for m in models}) != 1 or len({tuple(m.state_dict()) for m in models}) != 1:
            raise ValueError("stacked models must share one architecture; build every member from the same spec")
        params, buffers = stack_module_state(models)
        self.state_keys = list(models[0].state_dict())  # what a member's model loads (no non-persistent buffers)
        self.names = list(params)
        self.shapes = [tuple(params[n].shape[1:]) for n in self.names]
        self.size = len(models)
        self.set_flat(torch.cat([params[n].detach().reshape(-1) for n in self.names]))
        self.buffers = {n: b.detach() for n, b in buffers.items()}
        self.current: dict[str, torch.Tensor] = {}  # the parameters as views of `flat`, during a forward pass
        self.skeleton = grouped_skeleton(models[0], self) if sample is not None else None
        self.grouped = self.skeleton is not None
        if self.grouped and not self.reproduces(models, sample):
            self.skeleton, self.grouped = None, False
        if not self.grouped:
            self.skeleton = copy.deepcopy(models[0]).to("meta")  # the architecture only: vmap supplies the tensors

    @torch.no_grad()
    def reproduces(self, models: list[nn.Module], sample: torch.Tensor) -> bool:
        """Whether the grouped forward gives each member's own outputs (eval mode: no statistics change)."""
        modes = [m.training for m in models]
        for m in models:
            m.eval()
        self.train(False)
        try:
            ok = torch.allclose(self(sample), torch.stack([m(sample) for m in models]), rtol=1e-4, atol=1e-5)
        except (RuntimeError, ValueError, IndexError):  # a layout the grouped layers cannot follow
            ok = False
        for m, mode in zip(models, modes):
            m.train(mode)
        return ok

    def blocks(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of a flat tensor of this layout (the parameters, a gradient, an optimiser state) as [K, *shape]."""
        out, start = [], 0
        for shape in self.shapes:
            n = self.size * math.prod(shape)
            out.append(flat[start : start + n].view(self.size, *shape))
            start += n
        return out

    def set_flat(self, flat: torch.Tensor) -> None:
        """The parameters are leaf views of `flat` whose gradients are views of one flat gradient: backward
        accumulates into it in place (slices of one flat leaf would fill a zero tensor of the whole size per
        parameter, the largest cost of a stacked step), and the optimiser updates `flat` in place."""
        self.flat, self.grad = flat, torch.zeros_like(flat)
        self.leaves = [block.requires_grad_() for block in self.blocks(flat)]
        for leaf, grad in zip(self.leaves, self.blocks(self.grad)):
            leaf.grad = grad

    def zero_grad(self) -> None:
        self.grad.zero_()

    def params(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.leaves))

    def member_of_element(self) -> torch.Tensor:
        """Which member each element of the flat parameters belongs to (per-member learning rates, decays)."""
        members = torch.arange(self.size, device=self.flat.device)
        return torch.cat([members.repeat_interleave(math.prod(shape)) for shape in self.shapes])

    def train(self, mode: bool = True) -> None:
        self.skeleton.train(mode)

    @property
    def training(self) -> bool:
        return self.skeleton.training

    def to(self, device: torch.device) -> StackedModels:
        self.set_flat(self.flat.to(device))
        self.buffers = {n: b.to(device) for n, b in self.buffers.items()}
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member on the same inputs: [K, B, ...]. Dropout draws each member's own mask."""
        if self.grouped:
            self.current = self.params()
            try:
                out = self.skeleton(x)
            finally:
                self.current = {}
            return out.reshape(len(out), self.size, -1).transpose(0, 1)

        def member(params, buffers, x):
            return functional_call(self.skeleton, (params, buffers), (x,))

        return vmap(member, in_dims=(0, 0, None), randomness="different")(self.params(), self.buffers, x)

    def select_flat(self, flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """A flat tensor of this layout reduced to the members at positions `keep` (call before `select`)."""
        return torch.cat([block[keep].reshape(-1) for block in self.blocks(flat)])

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the members at positions `keep`; the others leave the group, the rest is unchanged."""
        flat = self.select_flat(self.flat, keep)
        self.buffers = {n: b[keep] for n, b in self.buffers.items()}
        self.size = len(keep)
        self.set_flat(flat)

    def member_state(self, position: int) -> dict[str, torch.Tensor]:
        """The state dict of the member at `position` (a copy): what its own nn.Module loads."""
        tensors = {**dict(zip(self.names, self.blocks(self.flat))), **self.buffers}
        return {k: tensors[k][position].clone() for k in self.state_keys}


def grouped_skeleton(model: nn.Module, owner: StackedModels) -> nn.Module | None:
    """A copy of `model` whose Linear, Conv2d and BatchNorm layers run all members at once; None when it has a
    layer with parameters or buffers of another kind."""
    skeleton = copy.deepcopy(model)
    for name, module in list(skeleton.named_modules()):
        kind = next((k for k in GROUPED if type(module) is k), None)
        if kind is None:
            if any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
                return None
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not (
            module.affine and module.track_running_stats and module.momentum is not None
        ):
            return None
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            return None
        grouped = GROUPED[kind](module, owner, f"{name}." if name else "")
        parent, _, attr = name.rpartition(".")
        if not name:
            return None  # the model is a single layer: nothing to gain
        setattr(skeleton.get_submodule(parent) if parent else skeleton, attr, grouped)
    return skeleton


class GroupedLayer(nn.Module):
    """A layer of the grouped skeleton: reads its members' tensors from the owner during a forward pass."""

    def __init__(self, layer: nn.Module, owner: StackedModels, prefix: str):
        super().__init__()
        self.settings = [layer]  # its hyper-parameters (stride, eps, ...); a list: not a submodule, not moved
        self.owner = [owner]
        self.prefix = prefix

    def tensor(self, name: str) -> torch.Tensor | None:
        owner = self.owner[0]
        key = self.prefix + name
        return owner.current.get(key, owner.buffers.get(key))

    def shared(self, x: torch.Tensor, features: int) -> bool:
        """The model's own input, the same for every member (not yet K members wide)."""
        return self.owner[0].size > 1 and x.shape[1] == features


class GroupedLinear(GroupedLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError("grouped linear layers take [batch, features] inputs")
        w, b = self.tensor("weight"), self.tensor("bias")
        k, out, inp = w.shape
        if self.shared(x, inp):  # one K-times-wider layer
            return F.linear(x, w.reshape(k * out, inp), None if b is None else b.reshape(-1))
        x = x.view(len(x), k, inp).transpose(0, 1)
        y = torch.bmm(x, w.transpose(1, 2)) if b is None else torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))
        return y.transpose(0, 1).reshape(y.shape[1], k * out)


class GroupedConv2d(GroupedLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.tensor("weight"), self.tensor("bias")
        c = self.settings[0]
        k = w.shape[0]
        groups = c.groups * k  # each member's channels are their own groups
        if self.shared(x, c.in_channels):
            if c.groups == 1:
                groups = 1  # one K-times-wider convolution of the shared input
            else:
                x = x.repeat(1, k, 1, 1)
        weight, bias = w.reshape(k * c.out_channels, *w.shape[2:]), None if b is None else b.reshape(-1)
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, groups)


class GroupedBatchNorm(GroupedLayer):
    """BatchNorm over K*C channels: each member's channels keep their own batch and running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.settings[0]
        mean, var, count = self.tensor("running_mean"), self.tensor("running_var"), self.tensor("num_batches_tracked")
        training = self.owner[0].training
        if training:
            count.add_(1)
        return F.batch_norm(
            x,
            mean.view(-1),  # views: the update lands in the stacked buffers
            var.view(-1),
            self.tensor("weight").reshape(-1),
            self.tensor("bias").reshape(-1),
            training,
            bn.momentum,
            bn.eps,
        )


GROUPED = {
    nn.Linear: GroupedLinear,
    nn.Conv2d: GroupedConv2d,
    nn.BatchNorm1d: GroupedBatchNorm,
    nn.BatchNorm2d: GroupedBatchNorm,
}
