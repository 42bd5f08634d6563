"""Data-parallel helpers: which samples each rank trains on."""

from __future__ import annotations

import torch

from kdcore.data.bundle import Split


def shard(split: Split, rank: int, world_size: int, seed: int = 0) -> Split:
    """This rank's share of `split`, cut as torch's DistributedSampler cuts it.

    A seeded permutation (the same on every rank), padded by repeating its head to a multiple of
    `world_size`, then every world_size-th sample from `rank`: shards are disjoint up to the
    padding and equal in size, so every rank takes the same number of steps and DDP's gradient
    all-reduce never waits on a rank that has run out of data. The training loop reshuffles within
    the shard every epoch.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    padding = (-len(order)) % world_size
    order = torch.cat([order, order[:padding]])[rank::world_size]
    return Split(split.x[order], split.y[order])
