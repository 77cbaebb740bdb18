"""Which items a run trains on and how each stage's batches are composed (a pure function of seed and iteration).

Kept apart from the loop: the loop asks for the batch of an iteration; what it holds (the items a method
learns from, two streams of masked and other items, a stage's size, each rank's share) is decided here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from frugalseg.config import RunConfig
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.sampling import BatchPlan
from frugalseg.errors import DataError
from frugalseg.training import StagePlan
from frugalseg.training.collectives import DistInfo

__all__ = ["BatchSource", "primary_items", "select_items"]


def select_items(dataset: SliceDataset, requirements: dict[str, Any], method_name: str) -> list[int]:
    """Indices of the training items a method learns from (``sample``: masks | labelled | all)."""
    sample = requirements.get("sample", "all")
    if sample == "masks":
        chosen = list(dataset.mask_indices)
        what = "items with a full mask"
    elif sample == "labelled":
        chosen = list(dataset.labelled_indices)
        what = "items with clicks, scribbles or masks"
    else:
        chosen = list(range(len(dataset)))
        what = "items"
    if not chosen:
        raise DataError(Path(dataset.origin), f"method {method_name!r} needs {what}, and the annotations give none")
    return chosen


def primary_items(dataset: SliceDataset, chosen: list[int]) -> list[int] | None:
    """The primary stream of two-stream sampling: the mask items, or with none the annotated items; ``None``
    (plain sampling) when that leaves nothing to mix.

    With no mask at all (a sparse box budget), the annotated slices take the mask items' fixed share of
    each batch, so that a method learning from boxes and unlabelled slices sees boxes in every batch.
    """
    masks = set(dataset.mask_indices)
    primary = [i for i in chosen if i in masks]
    if not primary:
        annotated = set(dataset.annotated_indices)
        primary = [i for i in chosen if i in annotated]
    if not primary or len(primary) == len(chosen):
        return None
    return primary


class BatchSource:
    """The batches of one run: the chosen items, and one :class:`BatchPlan` per stage.

    Args:
        config: the run's config (batch size, mask slots, seed).
        dataset: the training items.
        requirements: the method's (``sample``, ``two_stream``).
        method_name: for error messages.
        stages: the run's stages.
        info: this process's rank and world (each rank gets its share of every batch).
    """

    def __init__(self, config: RunConfig, dataset: SliceDataset, requirements: dict[str, Any], method_name: str,
                 stages: StagePlan, info: DistInfo) -> None:
        self.config = config
        self.dataset = dataset
        self.info = info
        self.chosen = select_items(dataset, requirements, method_name)
        primary = primary_items(dataset, self.chosen) if requirements.get("two_stream") else None
        self.plans = [self._plan(stages, k, primary) for k in range(len(stages))]

    def _plan(self, stages: StagePlan, index: int, primary: list[int] | None) -> BatchPlan:
        """The batch composition of stage ``index`` (two-stream when ``primary`` lists the mask items)."""
        cfg, world = self.config, self.info.world_size
        size, per_batch = stages.batch_shape(index, cfg.train.batch_size, cfg.data.mask_items_per_batch)
        if size % world:
            raise ValueError(f"batch size {size} (stage {stages.stages[index].name!r}) is not divisible by "
                             f"{world} ranks")
        if primary is None:
            return BatchPlan(len(self.chosen), size, cfg.train.seed)
        where = {idx: pos for pos, idx in enumerate(self.chosen)}
        return BatchPlan(len(self.chosen), size, cfg.train.seed, primary=[where[i] for i in primary],
                         primary_per_batch=per_batch or size // 2)

    def batch(self, stage_index: int, iteration: int, device: torch.device,
              memory_format: torch.memory_format) -> dict[str, Any]:
        """This rank's share of the batch of ``iteration``, collated and on ``device``."""
        plan = self.plans[stage_index]
        keys = plan.for_rank(plan.batch(iteration), self.info.rank, self.info.world_size)
        batch = default_collate([self.dataset[(self.chosen[i], s)] for i, s in keys])
        batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
        batch["image"] = batch["image"].contiguous(memory_format=memory_format)
        return batch
