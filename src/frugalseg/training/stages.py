"""Where a run's stages lie: consecutive iteration ranges, each with its own learning-rate cycle.

A method lists its stages (:meth:`frugalseg.training.Method.stages`); a single-stage method has one
spanning the run, and then everything here reduces to the plain schedule (the poly factor of the
global iteration, one batch size). Everything is a pure function of the iteration, so a resumed run
lands in the right stage with the right learning rate without storing anything.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from frugalseg.training.schedules import poly_lr_factor

__all__ = ["Stage", "StagePlan", "StepContext"]


@dataclass(frozen=True)
class Stage:
    """One consecutive range of a run's iterations with its own schedule (see :meth:`Method.stages`).

    At the first iteration of a stage the engine clears the optimiser's state (momentum, Adam moments) when
    ``reset_optimizer``, as a new training script would; sets the values of ``optimizer`` in every parameter
    group (e.g. ``{"nesterov": True}`` for SGD); calls :meth:`Method.on_stage_start`. During the stage the
    poly learning rate runs over the stage's own length, and batches hold ``batch_size`` items
    (``mask_items_per_batch`` of them with masks under two-stream sampling). At its last iteration the
    engine saves ``checkpoints/stage_<name>.pt`` beside ``last.pt``.

    Attributes:
        name: unique within the method; names the checkpoint and the log's stage column.
        iterations: length; a stage of 0 iterations is skipped.
        batch_size: global batch size; ``None``: ``train.batch_size``.
        mask_items_per_batch: two-stream slots for mask items; ``None``: ``data.mask_items_per_batch`` when
            ``batch_size`` is ``None``, else half of ``batch_size``.
        optimizer: parameter-group values set at the stage's start (a key the groups lack is an error).
        reset_optimizer: clear the optimiser state at the stage's start (not for the run's first stage,
            whose state is empty anyway).
    """

    name: str
    iterations: int
    batch_size: int | None = None
    mask_items_per_batch: int | None = None
    optimizer: Mapping[str, Any] = field(default_factory=dict)
    reset_optimizer: bool = True


@dataclass
class StepContext:
    """What a method may know about where training stands (for ramp-ups and stage switches).

    ``iteration`` and ``max_iterations`` count over the whole run; ``stage``, ``stage_start`` and
    ``stage_iterations`` place the iteration in its :class:`Stage` (a single-stage method sees one stage
    spanning the run; a context built by hand without them means the same).
    """

    iteration: int
    max_iterations: int
    stage: str = ""
    stage_start: int = 0
    stage_iterations: int | None = None

    @property
    def stage_iteration(self) -> int:
        """Iterations done within the current stage before this one."""
        return self.iteration - self.stage_start

    @property
    def stage_length(self) -> int:
        """Length of the current stage (the rest of the run when not given)."""
        return self.max_iterations - self.stage_start if self.stage_iterations is None else self.stage_iterations


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

    def lr_factor(self, iteration: int, power: float = 0.9, warmup_iterations: int = 0) -> float:
        """The poly factor (with warm-up) restarted at every stage: a run of one stage gets the plain schedule.

        ``iteration`` counts scheduler steps, so the factor at a stage's first iteration is 1 again.
        """
        k = self.index_at(iteration)
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
