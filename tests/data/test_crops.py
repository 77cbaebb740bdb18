"""Random crops on the grid: the window is a slice of the grid, and every annotation keeps its meaning in it.

The scene: a 12x12 slice whose grid is its own size (no resize), a 4x4 window. Without an augmentation seed
the window is centred: rows 4..7, columns 4..7 of the slice. Every expected value below is read off that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalseg.config import load_config
from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.candidates import ABSENT, PRESENT, UNKNOWN
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.transforms import AugmentParams, points_inside
from frugalseg.data.types import SliceItem
from frugalseg.errors import ConfigError
from frugalseg.losses.multilabel_deep_supervision import box_positive_map
from frugalseg.methods.dii_dcr import BatchInstances, Granularity, instance_slots

CLASSES = {"1": "a", "2": "b", "3": "c"}
WINDOW = (slice(4, 8), slice(4, 8))


def _scene() -> SliceItem:
    """Class 1 in rows/columns 4..5 (inside the centred window), class 2 in 9..11 (outside it), no class 3."""
    label = np.zeros((12, 12), dtype=np.uint8)
    label[4:6, 4:6] = 1
    label[9:12, 9:12] = 2
    image = np.arange(144, dtype=np.float32).reshape(12, 12) / 144  # every pixel its own value
    return SliceItem("p1_slice_1", "p1", "p1", image, label)


def _centred(**annotation: object) -> dict[str, torch.Tensor]:
    """The centred 4x4 window of the scene with ``annotation`` (4 classes: background, 1, 2, 3)."""
    item = _scene()
    ann = AnnotationFile(classes=CLASSES, items={item.item_id: Item.model_validate(annotation)})
    return SliceDataset([item], ann, 4, (12, 12), augment=False, crop_size=(4, 4))[0]


def test_centred_window_is_the_middle_of_the_grid():
    item = _scene()
    ex = _centred(mask=True)
    assert ex["image"].shape == (1, 4, 4)
    assert torch.allclose(ex["image"][0], torch.from_numpy(item.image[WINDOW]), atol=1e-6)
    assert torch.equal(ex["label"], torch.from_numpy(item.label[WINDOW].astype(np.int64)))


def test_mask_presence_is_what_the_window_holds():
    # the slice holds classes 0, 1, 2; the window holds 0 and 1 only: 2 becomes absent, 3 stays absent
    assert _centred(mask=True)["presence"].tolist() == [PRESENT, PRESENT, ABSENT, ABSENT]


def test_present_tags_become_unknown_absent_tags_stay_absent():
    ex = _centred(tags=[1, 2])
    assert ex["presence"].tolist() == [UNKNOWN, UNKNOWN, UNKNOWN, ABSENT]
    assert not ex["candidates"][3].any() and ex["candidates"][:3].all()  # 'not tagged' still excludes class 3


def test_click_outside_the_window_is_dropped_and_proves_nothing():
    ex = _centred(points=[{"class": 1, "y": 5, "x": 5}, {"class": 2, "y": 10, "x": 10}])
    cand = ex["candidates"]
    assert cand[:, 1, 1].tolist() == [False, True, False, False]  # slice pixel (5, 5) is window pixel (1, 1)
    single = cand.sum(0) == 1
    assert single.sum() == 1 and cand.all(0).sum() == 15  # the other click left no trace
    assert ex["presence"].tolist() == [UNKNOWN, PRESENT, UNKNOWN, UNKNOWN]


def test_boxes_are_clipped_to_the_window_and_keep_their_index():
    boxes = [
        {"class": 1, "y0": 2, "x0": 2, "y1": 5, "x1": 5},  # straddles the window: its rows/cols 4..5 remain
        {"class": 2, "y0": 6, "x0": 6, "y1": 7, "x1": 7},  # wholly inside: window rows/cols 2..3
        {"class": 3, "y0": 9, "x0": 9, "y1": 10, "x1": 10},  # wholly outside
    ]
    ex = _centred(boxes=boxes)
    expected_label = torch.zeros(4, 4, dtype=torch.int64)
    expected_label[0:2, 0:2] = 1
    expected_label[2:4, 2:4] = 2
    expected_index = torch.full((4, 4), -1, dtype=torch.int64)
    expected_index[0:2, 0:2] = 0
    expected_index[2:4, 2:4] = 1
    assert torch.equal(ex["box_label"], expected_label)
    assert torch.equal(ex["box_index"], expected_index)
    assert torch.equal(ex["candidates"][1], expected_label == 1)  # class 1 only inside its clipped box
    assert not ex["candidates"][3].any()  # its box lies outside the window: class 3 nowhere in it
    # class 2's box is wholly inside: present; class 1's may have its structure outside: unknown
    assert ex["presence"].tolist() == [UNKNOWN, UNKNOWN, PRESENT, UNKNOWN]


def test_clipped_boxes_are_the_same_instances_for_dii_and_mlds():
    boxes = [{"class": 1, "y0": 2, "x0": 2, "y1": 5, "x1": 5}, {"class": 2, "y0": 9, "x0": 9, "y1": 10, "x1": 10}]
    ex = _centred(boxes=boxes)
    batch = {k: v.unsqueeze(0) for k, v in ex.items()}
    instances = BatchInstances.of(batch["index"], instance_slots(batch, Granularity.BOX))
    # one instance: item 0's box 0 (the clipped one), on its 4 window pixels; box 1 is not in the window
    assert instances.items.tolist() == [0] and instances.slots.tolist() == [0]
    assert (instances.segments[0] == 0).sum() == 4
    # the cut box no longer holds class 1 in each of its rows and columns: MLDS takes no box positives from it
    assert torch.equal(ex["box_cut"][1], ex["box_label"] == 1) and not ex["box_cut"][[0, 2, 3]].any()
    positives = box_positive_map(batch["candidates"], batch["box_label"])
    assert positives[0, 1].sum() == 4 and not (positives & ~batch["box_cut"]).any()


def test_boxes_wholly_inside_are_not_cut():
    ex = _centred(boxes=[{"class": 2, "y0": 6, "x0": 6, "y1": 7, "x1": 7}, {"class": 2, "y0": 5, "x0": 5, "y1": 9,
                                                                            "x1": 9}])
    # the cut box of class 2 covers window rows/cols 1..3; the whole one 2..3 overrides it there
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1:4, 1:4] = True
    expected[2:4, 2:4] = False
    assert torch.equal(ex["box_cut"][2], expected)
    assert ex["presence"].tolist() == [UNKNOWN, UNKNOWN, PRESENT, UNKNOWN]


def test_points_inside_tells_whole_boxes():
    crop = AugmentParams().with_crop(None, (12, 12), (4, 4))
    corners = np.array([[4, 4], [7, 7], [3, 4], [8, 8]])
    assert points_inside(corners, crop, (12, 12), (12, 12)).tolist() == [True, True, False, False]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31))
def test_every_random_window_is_a_window_of_the_grid(seed):
    item = _scene()
    ds = SliceDataset([item], None, 3, (12, 12), augment=False, crop_size=(4, 6))
    ex = ds[(0, seed)]
    grid = torch.from_numpy(item.image)
    found = [(y, x) for y in range(9) for x in range(7)
             if torch.allclose(grid[y : y + 4, x : x + 6], ex["image"][0], atol=1e-6)]
    assert len(found) == 1
    assert torch.equal(ds[(0, seed)]["image"], ex["image"])  # same key, same window


def test_crops_leave_uncropped_runs_unchanged():
    """The crop's offset is drawn after the geometry: a 16x16 crop of a 16x16 grid is the uncropped example."""
    label = np.zeros((20, 24), dtype=np.uint8)
    label[3:9, 4:12] = 1
    item = SliceItem("p1_slice_1", "p1", "p1", label.astype(np.float32) / 2, label)
    plain = SliceDataset([item], None, 2, (16, 16))
    cropped = SliceDataset([item], None, 2, (16, 16), crop_size=(16, 16))
    for seed in range(10):
        a, b = plain[(0, seed)], cropped[(0, seed)]
        assert all(torch.equal(a[k], b[k]) for k in a if k != "presence")


def test_config_checks_the_crop_against_the_grid():
    overrides = ["data.root=.", "data.patch_size=[128,128]"]
    assert load_config("acdc_supervised", [*overrides, "data.crop_size=[96,96]"]).data.crop_size == (96, 96)
    with pytest.raises(ConfigError, match="crop_size"):
        load_config("acdc_supervised", [*overrides, "data.crop_size=[160,160]"])
    with pytest.raises(ConfigError, match="crop_size"):
        load_config("acdc_supervised", [*overrides, "data.crop_size=[100,100]"])
