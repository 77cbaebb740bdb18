"""Candidate maps, augmentation and the dataset: constraints move with the image and clicks stay on their organ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.candidates import ABSENT, PRESENT, UNKNOWN, rasterise
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.transforms import AugmentParams, warp
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError


def _item(label: np.ndarray, item_id: str = "p1_slice_1") -> SliceItem:
    image = (label.astype(np.float32) + 1) / 4
    return SliceItem(item_id, "p1", "p1", image, label.astype(np.uint8))


def _ann(**fields) -> Item:
    return Item.model_validate(fields)


def _blocks(h: int = 12, w: int = 10) -> np.ndarray:
    label = np.zeros((h, w), dtype=np.uint8)
    label[2:6, 1:5] = 1
    label[6:10, 5:9] = 2
    return label


def test_unlabelled_item_constrains_nothing():
    con = rasterise(_item(_blocks()), None, 3)
    assert con.dense.all() and (con.presence == UNKNOWN).all() and (con.label == -1).all()
    assert len(con.sparse_yx) == 0 and not con.has_mask


def test_mask_makes_every_pixel_a_singleton_and_sets_presence():
    label = _blocks()
    con = rasterise(_item(label), _ann(mask=True), 4)
    assert (con.dense.sum(0) == 1).all()
    assert (con.dense.argmax(0) == label).all()
    assert con.presence.tolist() == [PRESENT, PRESENT, PRESENT, ABSENT]
    assert con.has_mask and (con.label == label).all()


def test_tags_remove_untagged_classes_everywhere():
    con = rasterise(_item(_blocks()), _ann(tags=[2]), 3)
    assert not con.dense[1].any() and con.dense[2].all() and con.dense[0].all()
    assert con.presence.tolist() == [UNKNOWN, ABSENT, PRESENT]


def test_box_removes_its_class_outside_and_draws_weak_masks_smaller_on_top():
    boxes = [{"class": 1, "y0": 1, "x0": 1, "y1": 8, "x1": 8}, {"class": 2, "y0": 3, "x0": 3, "y1": 4, "x1": 4}]
    con = rasterise(_item(_blocks()), _ann(boxes=boxes), 3)
    assert con.dense[1, 1:9, 1:9].all() and con.dense[1].sum() == 64
    assert con.dense[2].sum() == 4 and con.dense[0].all()
    assert con.box_label[0, 0] == 0 and con.box_label[1, 1] == 1 and con.box_label[3, 3] == 2
    assert con.box_index[3, 3] == 1 and con.box_index[1, 1] == 0 and con.box_index[0, 0] == -1
    assert con.presence.tolist() == [UNKNOWN, PRESENT, PRESENT]


def test_points_and_scribbles_become_sparse_singletons():
    ann = _ann(points=[{"class": 1, "y": 3, "x": 2}], scribbles=[{"class": 0, "path": [[0, 0], [0, 1]]}])
    con = rasterise(_item(_blocks()), ann, 3)
    assert con.sparse_yx.tolist() == [[3, 2], [0, 0], [0, 1]]
    assert con.sparse_class.tolist() == [1, 0, 0]


def test_mask_on_an_item_without_label_names_the_item():
    item = SliceItem("x_slice_1", "x", "x", np.zeros((4, 4), np.float32), None)
    with pytest.raises(AnnotationError, match="x_slice_1"):
        rasterise(item, _ann(mask=True), 2, origin="a.json")


def test_identity_warp_returns_the_maps_unchanged():
    label = _blocks()
    out = warp(label.astype(np.float32), label[None].astype(np.int64), np.array([-1]), np.array([[3, 2]]),
               label.shape, AugmentParams())
    assert (out.maps[0].numpy() == label).all() and out.sparse_yx.tolist() == [[3, 2]] and out.keep.all()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [None, 0, 1])
def test_rot90_and_flip_are_exact_permutations(k, flip):
    label = np.random.default_rng(0).integers(0, 4, size=(7, 7))
    out = warp(label.astype(np.float32), label[None], np.array([-1]), np.zeros((0, 2), np.int64), (7, 7),
               AugmentParams(quarter_turns=k, flip_axis=flip))
    got = out.maps[0].round().long().numpy()
    expected = np.rot90(label, k)
    if flip is not None:
        expected = np.flip(expected, axis=flip)
    assert (got == expected).all()


def test_rot90_matches_numpy_on_a_square_slice():
    label = np.arange(25).reshape(5, 5)
    out = warp(label.astype(np.float32), label[None], np.array([-1]), np.zeros((0, 2), np.int64), (5, 5),
               AugmentParams(quarter_turns=1))
    assert (out.maps[0].round().long().numpy() == np.rot90(label)).all()


def test_outside_pixels_are_unknown_and_image_zero():
    label = _blocks(16, 16)
    ann = AnnotationFile(classes={"1": "a", "2": "b"}, items={"p1_slice_1": _ann(mask=True)})
    ds = SliceDataset([_item(label)], ann, 3, (16, 16))
    # find a seed whose draw is a free rotation: the corners then come from outside the slice
    seed = next(s for s in range(1000) if AugmentParams.draw(np.random.default_rng(s)).degrees > 10)
    ex = ds[(0, seed)]
    corner = (slice(0, 1), slice(0, 1))
    assert ex["label"][corner].item() == -1 and ex["candidates"][:, 0, 0].all() and ex["image"][0, 0, 0] == 0


@st.composite
def _scene(draw):
    h = draw(st.integers(12, 40))
    w = draw(st.integers(12, 40))
    label = np.zeros((h, w), dtype=np.uint8)
    for c in (1, 2, 3):
        y0 = draw(st.integers(0, h - 4))
        x0 = draw(st.integers(0, w - 4))
        label[y0 : y0 + draw(st.integers(4, 10)), x0 : x0 + draw(st.integers(4, 10))] = c
    # scale within [1/2, 2] along both axes whatever rot90 does: ACDC's slices against 128-256 inputs
    low, high = (max(h, w) + 1) // 2, 2 * min(h, w)
    out_h = draw(st.integers(low, high))
    out_w = draw(st.integers(low, high))
    seed = draw(st.integers(0, 2**31))
    return label, (out_h, out_w), seed


@settings(max_examples=150, deadline=None)
@given(_scene())
def test_clicks_stay_on_their_class_under_augmentation(scene):
    """Clicks on pixels whose 3x3 neighbourhood is one class land on that class after any augmentation.

    The scale stays within [1/2, 2]; a click is moved
    as a point and drawn on the output pixel it falls in, whose centre maps back to within one pixel
    of the click, hence the 3x3 condition.
    """
    label, out_hw, seed = scene
    h, w = label.shape
    rng = np.random.default_rng(seed)
    points = []
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            patch = label[y - 1 : y + 2, x - 1 : x + 2]
            if (patch == label[y, x]).all() and rng.random() < 0.05:
                points.append({"class": int(label[y, x]), "y": y, "x": x})
    if not points:
        return
    item = _item(label)
    ann = AnnotationFile(classes={"1": "a", "2": "b", "3": "c"}, items={item.item_id: _ann(points=points)})
    truth = AnnotationFile(classes={"1": "a", "2": "b", "3": "c"}, items={item.item_id: _ann(mask=True)})
    ex = SliceDataset([item], ann, 4, out_hw)[(0, seed)]
    gt = SliceDataset([item], truth, 4, out_hw)[(0, seed)]["label"]
    singleton = ex["candidates"].sum(0) == 1
    cls = ex["candidates"].float().argmax(0)
    assert singleton.any()
    ys, xs = torch.nonzero(singleton, as_tuple=True)
    # every click pixel sits on its own class in the identically warped ground truth
    assert (gt[ys, xs] == cls[ys, xs]).all(), (gt[ys, xs], cls[ys, xs])


def test_click_survives_downsampling():
    label = np.zeros((64, 64), dtype=np.uint8)
    label[20:40, 20:40] = 1
    item = _item(label)
    ann = AnnotationFile(classes={"1": "a"}, items={item.item_id: _ann(points=[{"class": 1, "y": 31, "x": 33}])})
    ex = SliceDataset([item], ann, 2, (16, 16), augment=False)[0]
    assert (ex["candidates"].sum(0) == 1).sum() == 1
    assert ex["candidates"][1].sum() == 256 and ex["candidates"][0].sum() == 255


def test_dataset_lists_mask_and_labelled_items_and_rejects_unknown_ids():
    items = [_item(_blocks(), "a_slice_1"), _item(_blocks(), "a_slice_2"), _item(_blocks(), "a_slice_3")]
    ann = AnnotationFile(classes={"1": "a", "2": "b"},
                         items={"a_slice_1": _ann(mask=True), "a_slice_2": _ann(points=[{"class": 1, "y": 3, "x": 2}]),
                                "a_slice_3": _ann(tags=[1])})
    ds = SliceDataset(items, ann, 3, (16, 16))
    assert ds.mask_indices == [0] and ds.labelled_indices == [0, 1] and ds.annotated_indices == [0, 1, 2]
    ex = ds[(2, 5)]
    assert ex["image"].shape == (1, 16, 16) and ex["candidates"].shape == (3, 16, 16)
    assert ex["candidates"].dtype == torch.bool and ex["presence"].dtype == torch.int8
    assert ex["label"].dtype == torch.int64 and not ex["has_mask"] and ex["index"] == 2
    bad = AnnotationFile(classes={"1": "a", "2": "b"}, items={"zzz_slice_9": _ann(mask=True)})
    with pytest.raises(AnnotationError, match="zzz_slice_9"):
        SliceDataset(items, bad, 3, (16, 16), origin="ann.json")


def test_same_key_same_example():
    ds = SliceDataset([_item(_blocks(20, 24))], None, 3, (16, 16))
    a, b = ds[(0, 123)], ds[(0, 123)]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_intensity_jitter_changes_only_the_image_reproducibly():
    """Brightness/contrast jitter draws from its own stream: same geometry and labels, a changed image."""
    items = [_item(_blocks(20, 24))]
    plain = SliceDataset(items, None, 3, (16, 16))
    jittered = SliceDataset(items, None, 3, (16, 16), intensity_jitter=0.5)
    a, b = plain[(0, 7)], jittered[(0, 7)]
    assert all(torch.equal(a[k], b[k]) for k in a if k != "image")
    assert not torch.equal(a["image"], b["image"])
    assert torch.equal(b["image"], jittered[(0, 7)]["image"])  # the key decides the jitter
    assert b["image"].min() >= 0 and b["image"].max() <= 1
    # brightness and contrast (clipped) are a non-decreasing map of grey values, the same for every pixel
    x, y = a["image"].flatten().double(), b["image"].flatten().double()
    order = torch.argsort(x, stable=True)
    assert (torch.diff(y[order]) >= -1e-6).all()
    for value in torch.unique(x):
        assert torch.allclose(y[x == value], y[x == value][0], atol=1e-6)
    # without augmentation (evaluation, key without a seed) nothing is jittered
    assert torch.equal(plain[0]["image"], jittered[0]["image"])
    with pytest.raises(ValueError, match="intensity_jitter"):
        SliceDataset(items, None, 3, (16, 16), intensity_jitter=1.0)
