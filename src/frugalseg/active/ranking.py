"""Turn per-slice scores into an ordered list of suggestions, volume-aware.

Neighbouring slices of a volume look alike, so annotating both buys little more than one of them:
unless asked, no two suggestions are adjacent slices of one volume. Slices are taken greedily by
decreasing score (ties: the pool's order); a slice next to one already taken is passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from frugalseg.data.types import SliceItem
from frugalseg.data.volumes import slice_number

__all__ = ["Selection", "select_slices"]


@dataclass
class Selection:
    """The suggested item ids in order (best first), their scores, and what the caller should be told."""

    item_ids: list[str]
    scores: list[float]
    warnings: list[str] = field(default_factory=list)


def select_slices(pool: Sequence[SliceItem], scores: np.ndarray, n: int, allow_adjacent: bool = False) -> Selection:
    """The ``n`` best slices of ``pool`` by ``scores`` (higher first), no two adjacent unless ``allow_adjacent``.

    ``n`` larger than the pool gives the whole pool, ranked, with a warning (the adjacency rule cannot
    hold then). When the rule leaves fewer than ``n`` slices, those are returned with a warning.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(scores) != len(pool):
        raise ValueError(f"{len(scores)} scores for {len(pool)} slices")
    order = sorted(range(len(pool)), key=lambda k: (-float(scores[k]), k))
    warnings: list[str] = []
    if n >= len(pool):
        if n > len(pool):
            warnings.append(f"asked for {n} slices but only {len(pool)} hold no annotation: suggesting all of them")
        allow_adjacent = True
    taken: list[int] = []
    numbers: dict[str, set[int]] = {}
    for k in order:
        if len(taken) == n:
            break
        item = pool[k]
        number = slice_number(item.item_id, item.case_id)
        near = numbers.setdefault(item.case_id, set())
        if not allow_adjacent and number is not None and (number - 1 in near or number + 1 in near):
            continue
        taken.append(k)
        if number is not None:
            near.add(number)
    if len(taken) < n and not warnings:
        warnings.append(f"only {len(taken)} of the {n} slices asked for are not next to another suggestion; "
                        "pass --allow-adjacent for more")
    return Selection([pool[k].item_id for k in taken], [float(scores[k]) for k in taken], warnings)
