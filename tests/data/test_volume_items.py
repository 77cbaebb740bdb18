"""Volume items (an annotation keyed by a case id, with z) become annotations of the case's slices for training."""

from __future__ import annotations

import pytest

from frugalseg.data.annotations import parse_annotations
from frugalseg.data.volume_items import split_volume_items
from frugalseg.errors import AnnotationError

VOLUMES = {"case": ["case_slice_1", "case_slice_2", "case_slice_3"]}
GRIDS = {"case_slice_1": (8, 9), "case_slice_2": (8, 9), "case_slice_3": (8, 9), "case": (3, 8, 9)}


def _file(items):
    return parse_annotations({"format": "frugalseg.annotations/1", "classes": {"1": "a", "2": "b"}, "items": items},
                             "ann.json", GRIDS)


def test_points_boxes_scribbles_go_to_their_slice_and_merge_with_the_slices_own():
    ann = _file({"case": {"points": [{"class": 1, "z": 1, "y": 2, "x": 3}],
                          "boxes": [{"class": 2, "z": 2, "y0": 0, "x0": 0, "y1": 4, "x1": 4}],
                          "scribbles": [{"class": 0, "path": [[0, 1, 1], [2, 5, 5]]}]},
                 "case_slice_2": {"points": [{"class": 2, "y": 7, "x": 7}]}})
    out = split_volume_items(ann, VOLUMES, GRIDS, "ann.json")
    assert sorted(out.items) == ["case_slice_1", "case_slice_2", "case_slice_3"]
    assert [(p.class_, p.y, p.x, p.z) for p in out.items["case_slice_2"].points] == [(2, 7, 7, None), (1, 2, 3, None)]
    assert out.items["case_slice_3"].boxes[0].z is None and out.items["case_slice_3"].scribbles[0].path == [[5, 5]]
    assert out.items["case_slice_1"].scribbles[0].path == [[1, 1]]


def test_a_volume_mask_marks_every_slice_and_volume_tags_are_refused():
    out = split_volume_items(_file({"case": {"mask": True}}), VOLUMES, GRIDS, "ann.json")
    assert all(out.items[s].mask for s in VOLUMES["case"])
    with pytest.raises(AnnotationError, match="item 'case', field 'tags'"):
        split_volume_items(_file({"case": {"tags": [1]}}), VOLUMES, GRIDS, "ann.json")


def test_a_volume_click_contradicting_a_slice_click_is_refused():
    ann = _file({"case": {"points": [{"class": 1, "z": 0, "y": 2, "x": 3}]},
                 "case_slice_1": {"points": [{"class": 2, "y": 2, "x": 3}]}})
    with pytest.raises(AnnotationError, match="case_slice_1.*pixel \\(y=2, x=3\\)"):
        split_volume_items(ann, VOLUMES, GRIDS, "ann.json")
