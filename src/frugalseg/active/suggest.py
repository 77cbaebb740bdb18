"""Score the slices that hold no annotation yet and rank them: the library side of ``frugalseg suggest``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from frugalseg.active.predictions import ScoringModel, softmax_pairs
from frugalseg.active.ranking import Selection, select_slices
from frugalseg.active.scores import STRATEGIES, disagreement, predictive_entropy, random_scores
from frugalseg.data.annotations import AnnotationFile
from frugalseg.data.types import SliceItem
from frugalseg.errors import ConfigError

__all__ = ["check_strategy", "rank_pool", "score_slices", "unannotated"]


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    return strategy


def unannotated(items: Sequence[SliceItem], annotations: AnnotationFile | None) -> list[SliceItem]:
    """The slices with no annotation (absent from the file, or an item that says nothing), in the data's order."""
    if annotations is None:
        return list(items)
    return [it for it in items if it.item_id not in annotations.items or annotations.items[it.item_id].is_empty]


def score_slices(model: ScoringModel | None, items: Sequence[SliceItem], strategy: str, seed: int) -> np.ndarray:
    """One score per slice, higher = more worth annotating (``random`` needs no model)."""
    check_strategy(strategy)
    if strategy == "random":
        return random_scores([it.item_id for it in items], seed)
    if model is None:
        raise ValueError(f"strategy {strategy!r} needs a model")
    parts: list[torch.Tensor] = []
    for p, q in softmax_pairs(model, items, second=strategy == "disagreement"):
        parts.append(predictive_entropy(p) if q is None else disagreement(p, q))
    return torch.cat(parts).double().cpu().numpy() if parts else np.zeros(0)


def rank_pool(model: ScoringModel | None, pool: Sequence[SliceItem], n: int, strategy: str, seed: int = 0,
              allow_adjacent: bool = False) -> Selection:
    """The ``n`` slices of ``pool`` to annotate next, best first (see :func:`select_slices`)."""
    if not pool:
        return Selection([], [], ["every slice already holds an annotation: nothing to suggest"])
    return select_slices(pool, score_slices(model, pool, strategy, seed), n, allow_adjacent)
