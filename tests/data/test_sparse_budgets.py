"""Sparse-slice budgets: which slices of each volume get annotated, checked by hand on the bundled sample."""

from __future__ import annotations

from functools import cache

import pytest

from frugalseg.data.annotations import dumps_annotations
from frugalseg.data.simulate import choose_slices, load_budget, simulate_items
from frugalseg.data.sources import open_source
from frugalseg.data.types import SliceItem
from frugalseg.data.volumes import are_adjacent, slice_number, volume_slices
from frugalseg.errors import ConfigError
from tests.helpers import sample_root


@cache
def sample_items() -> tuple[list[SliceItem], dict[int, str], int]:
    source = open_source(sample_root())
    return source.training_slices(), source.classes, source.num_classes


def test_slice_numbers_and_volume_order() -> None:
    assert slice_number("patient001_frame01_slice_3", "patient001_frame01") == 3
    assert slice_number("case7_z12", "case7") == 12
    assert slice_number("img_0001", "img_0001") is None
    items, _, _ = sample_items()
    volumes = volume_slices(items)
    # train_slices.list shuffles a volume's slices; grouped, they come back in slice order
    assert list(volumes) == ["patient099_frame01", "patient099_frame02", "patient038_frame01", "patient038_frame02",
                             "patient050_frame01", "patient050_frame02", "patient100_frame01", "patient100_frame02"]
    assert [it.item_id for it in volumes["patient038_frame01"]] == [f"patient038_frame01_slice_{k}"
                                                                     for k in range(1, 9)]
    a, b, c = volumes["patient038_frame01"][:3]
    assert are_adjacent(a, b) and are_adjacent(b, c) and not are_adjacent(a, c)
    assert not are_adjacent(a, volumes["patient038_frame02"][1])


def test_even_rule_picks_the_bin_centres() -> None:
    """S slices, n per volume: indices ⌊(2i+1)·S/(2n)⌋ of the slices in order (slice numbers count from 1)."""
    items, _, _ = sample_items()
    one = choose_slices(items, load_budget({"slices": {"per_volume": 1}}).slices, 0)
    # 16 slices -> index 8 -> slice 9; 8 -> index 4 -> slice 5; 10 -> index 5 -> slice 6
    assert one == {"patient099_frame01": ["patient099_frame01_slice_9"],
                   "patient099_frame02": ["patient099_frame02_slice_9"],
                   "patient038_frame01": ["patient038_frame01_slice_5"],
                   "patient038_frame02": ["patient038_frame02_slice_5"],
                   "patient050_frame01": ["patient050_frame01_slice_6"],
                   "patient050_frame02": ["patient050_frame02_slice_6"],
                   "patient100_frame01": ["patient100_frame01_slice_5"],
                   "patient100_frame02": ["patient100_frame02_slice_5"]}
    two = choose_slices(items, load_budget({"slices": {"per_volume": 2}}).slices, 0)
    # 16 -> indices 4, 12 (slices 5, 13); 10 -> indices 2, 7 (slices 3, 8); 8 -> indices 2, 6 (slices 3, 7)
    assert two["patient099_frame01"] == ["patient099_frame01_slice_5", "patient099_frame01_slice_13"]
    assert two["patient050_frame02"] == ["patient050_frame02_slice_3", "patient050_frame02_slice_8"]
    assert two["patient038_frame01"] == ["patient038_frame01_slice_3", "patient038_frame01_slice_7"]
    # the even rule ignores the seed; more slices than a volume has gives the whole volume
    assert choose_slices(items, load_budget({"slices": {"per_volume": 1}}).slices, 5) == one
    every = choose_slices(items, load_budget({"slices": {"per_volume": 50}}).slices, 0)
    assert sum(len(v) for v in every.values()) == len(items)


def test_random_rule_is_seeded_and_per_volume() -> None:
    items, _, _ = sample_items()
    spec = load_budget({"slices": {"per_volume": 3, "rule": "random"}}).slices
    first = choose_slices(items, spec, 0)
    assert choose_slices(list(reversed(items)), spec, 0) == {k: first[k] for k in reversed(list(first))}
    assert choose_slices(items, spec, 1) != first
    volumes = volume_slices(items)
    for case, ids in first.items():
        order = [it.item_id for it in volumes[case]]
        assert len(set(ids)) == 3 and ids == sorted(ids, key=order.index)  # distinct, in slice order


@pytest.mark.parametrize(("name", "kind"), [("sparse_masks", "masks"), ("sparse_boxes", "boxes")])
def test_shipped_sparse_budgets_on_the_sample(name: str, kind: str) -> None:
    items, classes, num_classes = sample_items()
    ann = simulate_items(items, classes, num_classes, "budget", 0, budget=name)
    middle = {"patient099": 9, "patient038": 5, "patient050": 6, "patient100": 5}
    expected = {f"{p}_frame0{f}_slice_{k}" for p, k in middle.items() for f in (1, 2)}
    assert set(ann.items) == expected  # the rest of every volume: no item, i.e. unlabelled (all classes allowed)
    by_id = {it.item_id: it for it in items}
    for item_id, got in ann.items.items():
        if kind == "masks":
            assert got.mask and not got.boxes
        else:  # the boxes --kind boxes gives that slice with the same seed
            alone = simulate_items([by_id[item_id]], classes, num_classes, "boxes", 0)
            assert not got.mask and got.boxes and got == alone.items[item_id]
    assert ann.provenance["slices"]["patient099_frame01"] == ["patient099_frame01_slice_9"]
    again = simulate_items(items, classes, num_classes, "budget", 0, budget=name)
    assert dumps_annotations(again) == dumps_annotations(ann)


@pytest.mark.parametrize("bad", [
    {"slices": {"per_volume": 0}},
    {"slices": {"per_volume": 1, "rule": "middle"}},
    {"slices": {"per_volume": 1, "kind": "unlabelled"}},
    {"slices": {"per_volume": 1}, "masks": {"first_patients": 1}},
    {"slices": {"per_volume": 1}, "rest": {"boxes": 1}},
])
def test_bad_sparse_budgets(bad: dict) -> None:
    with pytest.raises(ConfigError, match="slices"):
        load_budget(bad)
