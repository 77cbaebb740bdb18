"""Which items make up batch ``t``: a pure function of (seed, t), so resuming and DDP stay exact.

Plain sampling walks a fresh seeded permutation of the items each epoch. Two-stream sampling
(SSL4MIS ``TwoStreamBatchSampler``, used by every semi-supervised method) fills a fixed number of
slots per batch from the *primary* items (those with full masks) and the rest from the others,
each stream with its own epoch permutations, so a batch always holds some labelled images however
few there are. Each slot also gets an augmentation seed; the dataset draws its augmentation from it.

Because nothing here keeps state, the engine never has to checkpoint a sampler: batch ``t`` after
a resume is the batch ``t`` of the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


class _Stream:
    """An endless sequence of positions: the concatenation of seeded permutations of ``pool``."""

    def __init__(self, pool: Sequence[int], seed: int, stream_id: int) -> None:
        if not pool:
            raise ValueError("a sampling stream needs at least one item")
        self.pool = np.asarray(pool, dtype=np.int64)
        self.seed = seed
        self.stream_id = stream_id
        self._permutation = lru_cache(maxsize=4)(self._make_permutation)

    def _make_permutation(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.stream_id, epoch])
        return self.pool[rng.permutation(len(self.pool))]

    def take(self, start: int, count: int) -> list[int]:
        """Elements ``start .. start + count - 1`` of the endless sequence."""
        n = len(self.pool)
        return [int(self._permutation(k // n)[k % n]) for k in range(start, start + count)]


class BatchPlan:
    """Batch composition for every iteration.

    Args:
        num_items: number of positions to sample from (``0 .. num_items - 1``).
        batch_size: the global batch size (all ranks together).
        seed: the run seed.
        primary: positions of the primary stream (two-stream sampling), or ``None`` for plain sampling.
        primary_per_batch: slots per batch for primary positions.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        primary: Sequence[int] | None = None,
        primary_per_batch: int | None = None,
    ) -> None:
        if num_items < 1:
            raise ValueError("nothing to sample from")
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        if primary is None:
            self.streams = [(_Stream(range(num_items), seed, 0), batch_size)]
        else:
            per = batch_size // 2 if primary_per_batch is None else primary_per_batch
            if not 0 < per < batch_size:
                raise ValueError(f"primary_per_batch must be in 1..{batch_size - 1}, got {per}")
            primary_set = set(primary)
            secondary = [i for i in range(num_items) if i not in primary_set]
            self.streams = [
                (_Stream(sorted(primary_set), seed, 1), per),
                (_Stream(secondary, seed, 2), batch_size - per),
            ]

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """``(position, augmentation seed)`` for each slot of batch ``iteration`` (primary slots first)."""
        keys: list[tuple[int, int]] = []
        for stream, count in self.streams:
            keys.extend((pos, 0) for pos in stream.take(iteration * count, count))
        seeds = np.random.SeedSequence([self.seed, iteration]).generate_state(len(keys), dtype=np.uint32)
        return [(pos, int(s)) for (pos, _), s in zip(keys, seeds, strict=True)]

    @staticmethod
    def for_rank(batch: list[tuple[int, int]], rank: int, world_size: int) -> list[tuple[int, int]]:
        """This rank's share of a global batch: every ``world_size``-th slot, so each rank gets both streams."""
        if len(batch) % world_size:
            raise ValueError(f"batch of {len(batch)} cannot be split over {world_size} ranks")
        return batch[rank::world_size]


__all__ = ["BatchPlan"]
