"""Where a run's stages lie: consecutive iteration ranges, each with its own learning-rate cycle.

A method lists its stages (:meth:`frugalseg.methods.Method.stages`); a single-stage method has one
spanning the run, and then everything here reduces to the plain schedule (the poly factor of the
global iteration, one batch size). Everything is a pure function of the iteration, so a resumed run
lands in the right stage with the right learning rate without storing anything.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from frugalseg.engine.schedules import cosine_lr_factor, poly_lr_factor
from frugalseg.methods.base import Stage, StepContext

__all__ = ["StagePlan"]


class StagePlan:
    """The stages of one run of ``total`` iterations.

    Args:
        stages: the method's stages in order; stages of 0 iterations are dropped.
        total: the run's iterations (``train.iterations``).

    Raises:
        ValueError: lengths that do not add up to ``total``, a negative length, a duplicated or empty
            name, or a non-positive batch size.
    """

    def __init__(self, stages: Sequence[Stage], total: int) -> None:
        if any(s.iterations < 0 for s in stages):
            raise ValueError(f"stage lengths must be non-negative; got {[(s.name, s.iterations) for s in stages]}")
        if sum(s.iterations for s in stages) != total:
            raise ValueError(f"stage lengths {[(s.name, s.iterations) for s in stages]} do not add up to the "
                             f"run's {total} iterations")
        names = [s.name for s in stages]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"stage names must be unique and non-empty; got {names}")
        for s in stages:
            if (s.batch_size is not None and s.batch_size < 1) or (
                s.mask_items_per_batch is not None and s.mask_items_per_batch < 1
            ):
                raise ValueError(f"stage {s.name!r}: batch sizes must be positive")
        self.stages = [s for s in stages if s.iterations > 0]
        self.total = total
        self.starts: list[int] = []
        at = 0
        for s in self.stages:
            self.starts.append(at)
            at += s.iterations

    def __len__(self) -> int:
        return len(self.stages)

    def index_at(self, iteration: int) -> int:
        """Index of the stage holding ``iteration`` (the last stage for ``iteration >= total``)."""
        return max(0, bisect.bisect_right(self.starts, iteration) - 1)

    def start(self, index: int) -> int:
        return self.starts[index]

    def end(self, index: int) -> int:
        """One past the last iteration of stage ``index``."""
        return self.starts[index] + self.stages[index].iterations

    def context(self, iteration: int) -> StepContext:
        """The :class:`StepContext` of ``iteration``."""
        k = self.index_at(iteration)
        return StepContext(iteration=iteration, max_iterations=self.total, stage=self.stages[k].name,
                           stage_start=self.starts[k], stage_iterations=self.stages[k].iterations)

    def lr_factor(self, iteration: int, power: float = 0.9, warmup_iterations: int = 0, cosine: bool = False) -> float:
        """The poly (or ``cosine``) factor with warm-up, restarted at every stage: one stage gets the plain schedule.

        ``iteration`` counts scheduler steps, so the factor at a stage's first iteration is 1 again.
        """
        k = self.index_at(iteration)
        if cosine:
            return cosine_lr_factor(iteration - self.starts[k], self.stages[k].iterations, warmup_iterations)
        return poly_lr_factor(iteration - self.starts[k], self.stages[k].iterations, power, warmup_iterations)

    def batch_shape(self, index: int, batch_size: int, mask_items_per_batch: int | None) -> tuple[int, int | None]:
        """(global batch size, mask slots or ``None`` for the default half) of stage ``index``.

        Args:
            batch_size: the run's ``train.batch_size``.
            mask_items_per_batch: the run's ``data.mask_items_per_batch``.
        """
        s = self.stages[index]
        if s.batch_size is None:
            return batch_size, s.mask_items_per_batch or mask_items_per_batch
        return s.batch_size, s.mask_items_per_batch
