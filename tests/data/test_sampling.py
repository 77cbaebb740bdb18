"""Batch plans: deterministic, epoch-complete, two-stream composition, rank split."""

from __future__ import annotations

import pytest

from frugalseg.data.sampling import BatchPlan


def test_batches_are_a_pure_function_of_seed_and_iteration():
    a, b = BatchPlan(10, 4, seed=3), BatchPlan(10, 4, seed=3)
    assert [a.batch(i) for i in range(7)] == [b.batch(i) for i in reversed(range(7))][::-1]
    assert BatchPlan(10, 4, seed=4).batch(0) != a.batch(0)


def test_plain_sampling_visits_every_item_once_per_epoch():
    plan = BatchPlan(12, 4, seed=0)
    seen = [pos for it in range(3) for pos, _ in plan.batch(it)]
    assert sorted(seen) == list(range(12))


def test_two_stream_fills_primary_slots_from_primary_items():
    primary = [0, 1, 2]
    plan = BatchPlan(20, 6, seed=1, primary=primary, primary_per_batch=2)
    for it in range(10):
        batch = [pos for pos, _ in plan.batch(it)]
        assert set(batch[:2]) <= set(primary) and not set(batch[2:]) & set(primary)


def test_rank_split_is_disjoint_and_mixes_both_streams():
    plan = BatchPlan(20, 8, seed=1, primary=[0, 1, 2, 3], primary_per_batch=4)
    batch = plan.batch(0)
    r0, r1 = BatchPlan.for_rank(batch, 0, 2), BatchPlan.for_rank(batch, 1, 2)
    assert sorted(r0 + r1) == sorted(batch)
    assert sum(p < 4 for p, _ in r0) == 2 and sum(p < 4 for p, _ in r1) == 2
    with pytest.raises(ValueError, match="split"):
        BatchPlan.for_rank(batch, 0, 3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        BatchPlan(0, 4, 0)
    with pytest.raises(ValueError):
        BatchPlan(10, 4, 0, primary=[1], primary_per_batch=4)
