"""Two-stream sampling's primary stream: mask items, or the annotated items of a budget without masks."""

from __future__ import annotations

import pytest

from frugalseg.data.dataset import SliceDataset
from frugalseg.data.simulate import simulate_items
from frugalseg.data.sources import open_source
from frugalseg.engine.batches import primary_items
from tests.helpers import sample_root


@pytest.mark.parametrize(("budget", "primary"), [
    ("sparse_masks", "the 8 masked slices"),
    ("sparse_boxes", "the 8 boxed slices"),
    ("masks3_boxes_tags", "masks only"),
    ("points", None),
])
def test_primary_stream(budget: str, primary: str | None) -> None:
    source = open_source(sample_root())
    items = source.training_slices()
    ann = simulate_items(items, source.classes, source.num_classes, "budget", 0, budget=budget)
    dataset = SliceDataset(items, ann, source.num_classes, (32, 32), augment=False)
    chosen = list(range(len(dataset)))
    got = primary_items(dataset, chosen)
    if primary is None:  # every slice annotated, none with a mask: nothing to mix
        assert got is None
    elif primary == "masks only":  # boxes and tags on other patients do not join the masks' stream
        assert got == dataset.mask_indices and len(got) == 68
    else:
        assert got is not None and [items[i].item_id for i in got] == sorted(ann.items, key=[
            it.item_id for it in items].index)
        assert len(got) == 8
