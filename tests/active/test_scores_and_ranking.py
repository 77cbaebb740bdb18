"""Scores against hand-computed values, and the greedy, volume-aware ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from frugalseg.active.predictions import ScoringModel
from frugalseg.active.ranking import select_slices
from frugalseg.active.scores import disagreement, predictive_entropy, random_scores
from frugalseg.active.suggest import rank_pool, score_slices, unannotated
from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.types import SliceItem


def test_entropy_by_hand() -> None:
    # slice A: one pixel (0.5, 0.5), one pixel (1, 0) -> (ln 2 + 0) / 2; slice B: (0.9, 0.1) twice
    probs = torch.tensor([[[[0.5, 1.0]], [[0.5, 0.0]]], [[[0.9, 0.9]], [[0.1, 0.1]]]])
    got = predictive_entropy(probs)
    b = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert got.tolist() == pytest.approx([math.log(2) / 2, b], abs=1e-6)


def test_disagreement_by_hand() -> None:
    p = torch.tensor([[[[1.0, 0.5]], [[0.0, 0.5]]]])
    q = torch.tensor([[[[0.0, 0.5]], [[1.0, 0.5]]]])
    assert disagreement(p, q).tolist() == pytest.approx([0.5])  # TV 1 on one pixel, 0 on the other
    assert disagreement(p, p).tolist() == [0.0]


class TwoClassByIntensity(nn.Module):
    """Logits (image, 0): a slice of constant intensity v gets p = (e^v, 1) / (e^v + 1) at every pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.zeros_like(x)], dim=1)


def constant_slice(case: str, k: int, value: float) -> SliceItem:
    return SliceItem(f"{case}_slice_{k}", case, case, np.full((12, 10), value, np.float32), None)


def binary_entropy(v: float) -> float:
    p = math.exp(v) / (math.exp(v) + 1)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_entropy_ranking_on_a_hand_made_case() -> None:
    model = ScoringModel(TwoClassByIntensity(), None, "flip", 2, (8, 8), 3, torch.device("cpu"))
    values = [3.0, 0.0, 1.0, -0.5, 2.0]
    pool = [constant_slice(f"v{k}", 1, v) for k, v in enumerate(values)]
    scores = score_slices(model, pool, "entropy", 0)
    assert scores.tolist() == pytest.approx([binary_entropy(v) for v in values], abs=1e-5)
    ranked = rank_pool(model, pool, 5, "entropy")
    assert ranked.item_ids == ["v1_slice_1", "v3_slice_1", "v2_slice_1", "v4_slice_1", "v0_slice_1"]  # |v| up
    # a left-right symmetric network on a constant slice agrees with its flip: disagreement 0
    assert score_slices(model, pool, "disagreement", 0).tolist() == [0.0] * 5


def test_adjacent_slices_are_passed_over_unless_allowed() -> None:
    pool = [constant_slice("a", k, 0.0) for k in (1, 2, 3, 4)] + [constant_slice("b", 2, 0.0)]
    scores = np.array([0.9, 1.0, 0.8, 0.1, 0.5])
    assert select_slices(pool, scores, 3).item_ids == ["a_slice_2", "b_slice_2", "a_slice_4"]
    assert select_slices(pool, scores, 3, allow_adjacent=True).item_ids == ["a_slice_2", "a_slice_1", "a_slice_3"]
    few = select_slices(pool, scores, 4)
    assert few.item_ids == ["a_slice_2", "b_slice_2", "a_slice_4"] and "only 3 of the 4" in few.warnings[0]


def test_more_than_the_pool_returns_it_all_with_a_warning() -> None:
    pool = [constant_slice("a", k, 0.0) for k in (1, 2, 3)]
    got = select_slices(pool, np.array([0.2, 0.3, 0.1]), 10)
    assert got.item_ids == ["a_slice_2", "a_slice_1", "a_slice_3"] and "only 3 hold no annotation" in got.warnings[0]


def test_ties_keep_the_pool_order_and_random_is_seeded_per_slice() -> None:
    pool = [constant_slice("a", k, 0.0) for k in (1, 3, 5)]
    assert select_slices(pool, np.zeros(3), 3).item_ids == ["a_slice_1", "a_slice_3", "a_slice_5"]
    ids = [f"x{k}" for k in range(20)]
    first = random_scores(ids, 0)
    assert np.array_equal(random_scores(ids, 0), first) and not np.array_equal(random_scores(ids, 1), first)
    assert random_scores(ids[5:], 0).tolist() == first[5:].tolist()  # a slice's draw ignores the rest of the pool


def test_the_pool_is_what_holds_no_annotation() -> None:
    pool = [constant_slice("a", k, 0.0) for k in (1, 2, 3)]
    ann = AnnotationFile(classes={"1": "x"}, items={"a_slice_1": Item(mask=True), "a_slice_2": Item()})
    assert [it.item_id for it in unannotated(pool, ann)] == ["a_slice_2", "a_slice_3"]
    assert unannotated(pool, None) == pool
