"""The generator on a stand-in model: which items get label maps, click boxes, the cache, bad boxes."""

from __future__ import annotations

import numpy as np
import pytest

from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError
from frugalseg.pseudolabels.generate import item_prompts, pseudolabel_items
from frugalseg.pseudolabels.litemedsam import BoxPrompt

CLASSES = {"1": "RV", "2": "Myo", "3": "LV"}


class BoxFiller:
    """A stand-in for LiteMedSAM: each box's logit is +1 inside it, -1 outside; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray, boxes) -> np.ndarray:
        self.calls += 1
        out = -np.ones((len(boxes), *image.shape), dtype=np.float32)
        for k, b in enumerate(boxes):
            out[k, b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = 1.0
        return out


def _items() -> list[SliceItem]:
    rng = np.random.default_rng(0)
    return [SliceItem(f"s{i}", "p", "p", rng.random((10, 12), dtype=np.float32), None) for i in range(4)]


def _ann(items: dict) -> AnnotationFile:
    return AnnotationFile(classes=CLASSES, items={k: Item.model_validate(v) for k, v in items.items()})


BOXED = {
    "s0": {"boxes": [{"class": 3, "y0": 2, "x0": 3, "y1": 4, "x1": 6}], "tags": [3]},
    "s1": {"mask": True},
    "s2": {"points": [{"class": 2, "y": 5, "x": 5}, {"class": 0, "y": 0, "x": 0}]},
    "s3": {"tags": []},
}


def test_boxed_items_get_label_maps_and_everything_else_is_kept():
    model = BoxFiller()
    out = pseudolabel_items(_items(), _ann(BOXED), lambda: model, progress=False)
    expected = np.zeros((10, 12), dtype=np.int64)
    expected[2:5, 3:7] = 3
    assert np.array_equal(out.items["s0"].label_map.to_array(), expected)
    assert out.items["s0"].boxes == _ann(BOXED).items["s0"].boxes and out.items["s0"].tags == [3]
    for k in ("s1", "s2", "s3"):
        assert out.items[k] == _ann(BOXED).items[k]
    assert model.calls == 1 and out.provenance["pseudolabels"]["items"] == 1


def test_click_box_rule_centres_an_n_box_on_foreground_clicks_cut_at_the_border():
    item = Item.model_validate({"points": [{"class": 2, "y": 5, "x": 5}, {"class": 1, "y": 0, "x": 11},
                                           {"class": 0, "y": 3, "x": 3}]})
    boxes, classes = item_prompts(item, (10, 12), click_box=5)
    assert boxes == [BoxPrompt(3, 3, 7, 7), BoxPrompt(0, 9, 2, 11)] and classes == [2, 1]
    boxes, _ = item_prompts(item, (10, 12), click_box=4)
    assert boxes[0] == BoxPrompt(4, 4, 7, 7)  # even side: one more pixel below and right
    assert item_prompts(item, (10, 12), click_box=None) == ([], [])
    out = pseudolabel_items(_items(), _ann(BOXED), BoxFiller, click_box=3, progress=False)
    assert (out.items["s2"].label_map.to_array() == 2).sum() == 9


def test_cache_resumes_without_running_the_model_again(tmp_path):
    first = BoxFiller()
    a = pseudolabel_items(_items(), _ann(BOXED), lambda: first, cache_dir=tmp_path, progress=False)
    assert first.calls == 1 and len(list(tmp_path.glob("s0.*.npz"))) == 1

    def must_not_load():
        raise AssertionError("the model was loaded although every item is cached")

    b = pseudolabel_items(_items(), _ann(BOXED), must_not_load, cache_dir=tmp_path, progress=False)
    assert a == b
    moved = dict(BOXED, s0={"boxes": [{"class": 3, "y0": 2, "x0": 3, "y1": 5, "x1": 6}]})
    second = BoxFiller()
    pseudolabel_items(_items(), _ann(moved), lambda: second, cache_dir=tmp_path, progress=False)
    assert second.calls == 1  # another box is another key


@pytest.mark.parametrize(
    ("box", "field", "words"),
    [
        ({"class": 3, "y0": 2, "x0": 3, "y1": 10, "x1": 6}, "boxes.0.y1", "y1=10 lies outside the image (grid 10x12)"),
        ({"class": 3, "y0": 2, "x0": 7, "y1": 4, "x1": 6}, "boxes.0.x1", "box corners out of order"),
        ({"class": 0, "y0": 2, "x0": 3, "y1": 4, "x1": 6}, "boxes.0.class", "background"),
    ],
)
def test_bad_boxes_get_the_annotation_files_errors_before_the_model_loads(box, field, words):
    def must_not_load():
        raise AssertionError("the model was loaded for a broken file")

    with pytest.raises(AnnotationError) as err:
        pseudolabel_items(_items(), _ann({"s0": {"boxes": [box]}}), must_not_load, origin="boxes.json",
                          progress=False)
    assert err.value.item == "s0" and err.value.field == field and words in str(err.value)
    assert "boxes.json" in str(err.value)
