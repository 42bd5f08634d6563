"""AdamW and SGD for stacked members: each member's own learning rate and weight decay, one shared schedule.

The same update rules as torch.optim.AdamW and torch.optim.SGD (kdcore.train.make_optimizer's settings), applied
to the flat parameters of kdcore.stacked with per-element learning rates and decays. Every schedule kdcore uses is
proportional to the peak learning rate (OneCycle's start and end are fixed fractions of it), so the schedule is
one shared factor: torch's own scheduler drives a one-parameter optimiser at lr 1, whose lr is the factor and
whose momentum (or Adam's beta1, which OneCycle cycles too) is every member's.
"""

from __future__ import annotations

import torch


class MemberOptimizer:
    def __init__(
        self,
        kind: str,
        lrs: torch.Tensor,
        weight_decays: torch.Tensor,
        member_of: torch.Tensor,
        shared: torch.optim.Optimizer,
        nesterov: bool,
    ):
        """`lrs`, `weight_decays`: [K] peak values; `member_of`: member of each flat element; `shared`: the optimiser
        the schedule steps (lr 1)."""
        if kind not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; choose 'adam' or 'sgd'")
        self.kind, self.shared, self.nesterov = kind, shared, nesterov
        self.lrs, self.weight_decays = lrs, weight_decays
        self.spread(member_of)
        self.state: dict[str, torch.Tensor] = {}
        self.steps = 0

    @torch.no_grad()
    def step(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        group = self.shared.param_groups[0]
        lr = self.lr * group["lr"]
        self.steps += 1
        self.shared.step()  # no gradient, so no update: it only marks the optimiser stepped before its scheduler
        if self.kind == "adam":
            beta1, beta2 = group["betas"]
            if not self.state:
                self.state = {"exp_avg": torch.zeros_like(flat), "exp_avg_sq": torch.zeros_like(flat)}
            exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
            flat.mul_(1 - lr * self.decay)  # AdamW: decoupled decay, scaled by the scheduled lr
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**self.steps) ** 0.5).add_(group["eps"])
            flat.sub_(exp_avg / denom * (lr / (1 - beta1**self.steps)))
            return
        momentum = group["momentum"]
        grad = grad + self.decay * flat  # SGD's L2 decay (0 for a member without one: the same as torch skipping it)
        if momentum != 0:
            if "momentum_buffer" not in self.state:
                self.state["momentum_buffer"] = grad.clone()
            else:
                self.state["momentum_buffer"].mul_(momentum).add_(grad)
            buf = self.state["momentum_buffer"]
            grad = grad.add(buf, alpha=momentum) if self.nesterov else buf
        flat.sub_(lr * grad)

    def select(self, keep: torch.Tensor, select_flat) -> None:
        """Keep the members at positions `keep`, their states unchanged; then `spread` over the new layout."""
        self.state = {k: select_flat(v, keep) for k, v in self.state.items()}
        self.lrs, self.weight_decays = self.lrs[keep], self.weight_decays[keep]

    def spread(self, member_of: torch.Tensor) -> None:
        self.lr, self.decay = self.lrs[member_of], self.weight_decays[member_of]  # per element
