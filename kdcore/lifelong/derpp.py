"""DER++ (Buzzega et al. 2020): replay stored logits (MSE) and labels (CE) from a reservoir buffer."""

from __future__ import annotations

import torch.nn.functional as F

from kdcore.lifelong.base import Strategy
from kdcore.lifelong.buffer import ReservoirBuffer
from kdcore.lifelong.registry import register_strategy

# The paper's best values for Seq-MNIST (Buzzega et al. 2020, appendix; mammoth's best_args), by buffer size.
BEST = {
    200: {"alpha": 0.2, "beta": 1.0, "replay_batch_size": 128},
    500: {"alpha": 1.0, "beta": 0.5, "replay_batch_size": 10},
}


@register_strategy("derpp")
class DERpp(Strategy):
    name = "derpp"

    def __init__(
        self,
        buffer_size: int = 200,
        alpha: float = 0.2,
        beta: float = 1.0,
        replay_batch_size: int = 10,
        seed: int = 0,
        **_,
    ):
        super().__init__(seed)
        self.alpha, self.beta, self.replay_batch_size = alpha, beta, replay_batch_size
        self.buffer = ReservoirBuffer(buffer_size, seed)

    def extra_terms(self, model, x, y, logits):
        if len(self.buffer) == 0:
            return {}
        # Two independent draws, as in the paper: one for the logits term, one for the labels term.
        bx, _, blogits, mask = self.buffer.sample(self.replay_batch_size, x.device)
        out = model(bx)[:, : blogits.shape[1]]
        mse = ((out - blogits) ** 2 * mask).sum() / mask.sum()
        bx, by, _, _ = self.buffer.sample(self.replay_batch_size, x.device)
        return {"replay_mse": self.alpha * mse, "replay_ce": self.beta * F.cross_entropy(model(bx), by)}

    def after_step(self, x, y, logits):
        self.buffer.add(x, y, logits)

    def state_dict(self):
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.buffer = ReservoirBuffer.from_state_dict(state["buffer"])
