"""The ``label_map`` field of ``frugalseg.annotations/1``: run-length round trip, validation, and training use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frugalseg.data.annotations import (
    AnnotationFile,
    Item,
    LabelMap,
    dumps_annotations,
    load_annotations,
    save_annotations,
)
from frugalseg.data.candidates import PRESENT, rasterise
from frugalseg.data.dataset import SliceDataset
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError

CLASSES = {"1": "RV", "2": "Myo", "3": "LV"}


def _label() -> np.ndarray:
    label = np.zeros((6, 5), dtype=np.int64)
    label[1:3, 1:4] = 3
    label[4, :] = 1
    return label


def _write(tmp_path, item: dict) -> object:
    path = tmp_path / "ann.json"
    data = {"format": "frugalseg.annotations/1", "classes": CLASSES, "items": {"s1": item}}
    path.write_text(json.dumps(data))
    return path


def test_run_length_encoding_by_hand_and_round_trip():
    lm = LabelMap.from_array(_label())
    # row 0: 5 bg, row 1: 1 bg + 3 LV + 1 bg, row 2 likewise, row 3: 5 bg, row 4: 5 RV, row 5: 5 bg
    assert lm.shape == [6, 5]
    assert lm.runs == [0, 6, 3, 3, 0, 2, 3, 3, 0, 6, 1, 5, 0, 5]
    assert np.array_equal(lm.to_array(), _label())


def test_file_with_label_map_loads_saves_and_round_trips_bytes(tmp_path):
    ann = AnnotationFile(classes=CLASSES, items={"s1": Item(label_map=LabelMap.from_array(_label()))})
    path = tmp_path / "a.json"
    save_annotations(ann, path)
    back = load_annotations(path, grids={"s1": (6, 5)})
    assert back == ann
    assert path.read_text() == dumps_annotations(back)
    assert '"label_map": {"shape": [6, 5], "runs": [0, 6, 3, 3' in path.read_text()


@pytest.mark.parametrize(
    ("label_map", "extra", "field", "words"),
    [
        ({"shape": [6, 5], "runs": [0, 29]}, {}, "label_map.runs", "add up to 29, not H*W = 30"),
        ({"shape": [6, 5], "runs": [0, 30, 1]}, {}, "label_map.runs", "count must be even"),
        ({"shape": [6, 5], "runs": [4, 30]}, {}, "label_map.runs.0", "unknown class 4"),
        ({"shape": [6, 5], "runs": [0, 0, 1, 30]}, {}, "label_map.runs.1", "run length 0"),
        ({"shape": [5, 6], "runs": [0, 30]}, {}, "label_map.shape", "not the image's grid 6x5"),
        ({"shape": [30], "runs": [0, 30]}, {}, "label_map.shape", "2D"),
        ({"shape": [6, 5], "runs": [0, 30]}, {"mask": True}, "label_map", "not both"),
        ({"shape": [6, 5], "runs": [0, 30], "source": "x"}, {}, "label_map.source", "unknown field"),
    ],
)
def test_bad_label_maps_are_refused_naming_the_field(tmp_path, label_map, extra, field, words):
    path = _write(tmp_path, {"label_map": label_map, **extra})
    with pytest.raises(AnnotationError) as err:
        load_annotations(path, grids={"s1": (6, 5)})
    assert err.value.item == "s1" and err.value.field == field and words in str(err.value)


def test_label_map_is_the_training_label_and_makes_the_item_a_mask_item():
    image = np.zeros((6, 5), dtype=np.float32)
    stored = np.full((6, 5), 2, dtype=np.uint8)  # the data's own label differs: the file's map must win
    item = SliceItem("s1", "p1", "p1", image, stored)
    ann = Item(label_map=LabelMap.from_array(_label()))
    con = rasterise(item, ann, 4)
    assert con.has_mask and np.array_equal(con.label, _label())
    assert con.presence.tolist() == [PRESENT, PRESENT, 0, PRESENT]
    ds = SliceDataset([item], AnnotationFile(classes=CLASSES, items={"s1": ann}), 4, (6, 5), augment=False)
    assert ds.mask_indices == [0] and ds.labelled_indices == [0]
    assert np.array_equal(ds[0]["label"].numpy(), _label())


def test_label_map_without_stored_label_trains_and_wrong_shape_is_refused():
    item = SliceItem("s1", "p1", "p1", np.zeros((6, 5), dtype=np.float32), None)
    assert rasterise(item, Item(label_map=LabelMap.from_array(_label())), 4).has_mask
    bad = Item(label_map=LabelMap.from_array(np.zeros((5, 5), dtype=np.int64)))
    with pytest.raises(AnnotationError, match="label_map shape"):
        rasterise(item, bad, 4)


def test_label_map_costs_no_annotator_time():
    from frugalseg.bench.cost import count_annotations

    ann = AnnotationFile(classes=CLASSES, items={"s1": Item.model_validate(
        {"boxes": [{"class": 3, "y0": 1, "x0": 1, "y1": 2, "x1": 3}]}).model_copy(
        update={"label_map": LabelMap.from_array(_label())})})
    counts = count_annotations(ann)
    assert counts.masks == 0 and counts.boxes == 1
