from __future__ import annotations

import json

import pytest
import yaml

from frugalseg.bench.cost import (
    AnnotationCounts,
    cost_model_path,
    count_annotations,
    load_cost_model,
    run_annotation_cost,
)
from frugalseg.data.annotations import parse_annotations
from frugalseg.errors import ConfigError

TINY = {
    "format": "frugalseg.annotations/1",
    "classes": {"1": "RV", "2": "Myo", "3": "LV"},
    "items": {
        "a": {"mask": True},
        "b": {"points": [{"class": 0, "y": 1, "x": 1}, {"class": 1, "y": 2, "x": 2}, {"class": 2, "y": 3, "x": 3},
                         {"class": 3, "y": 4, "x": 4}]},
        "c": {"boxes": [{"class": 1, "y0": 0, "x0": 0, "y1": 3, "x1": 3}, {"class": 3, "y0": 1, "x0": 1, "y1": 4,
                                                                          "x1": 4}], "tags": [1, 3]},
        "d": {"tags": []},
        "e": {"scribbles": [{"class": 2, "path": [[1, 1], [1, 2]]}]},
        "f": {},
    },
}


def _file(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(TINY))
    return path


def test_counts_of_a_tiny_file():
    counts = count_annotations(parse_annotations(TINY))
    assert counts == AnnotationCounts(classes=3, masks=1, points=4, scribbles=1, boxes=2, tagged=2, annotated=5)


def test_cost_by_hand(tmp_path):
    model = load_cost_model()
    cost = run_annotation_cost(_file(tmp_path), model)
    assert cost is not None
    # default: 1 mask x 3 structures x 20 + 4 clicks x 2.5 + 2 boxes x 7 + 2 tagged x 3 classes x 1 + 1 scribble x 10
    assert cost.seconds == pytest.approx(60 + 10 + 14 + 6 + 10)
    # low: 3 x 15 + 4 x 1.5 + 2 x 7 + 2 x 3 x 0.5 + 5, no overhead
    assert cost.low == pytest.approx(45 + 6 + 14 + 3 + 5)
    # high: 3 x 80 + 4 x 3 + 2 x 35 + 2 x 3 x 2 + 15 + 5 annotated slices x 5 s overhead
    assert cost.high == pytest.approx(240 + 12 + 70 + 12 + 15 + 25)
    assert run_annotation_cost(tmp_path / "none.json", model) is None


def test_cost_model_is_overridable(tmp_path):
    tree = yaml.safe_load(cost_model_path().read_text())
    tree["mask_structure"].update(seconds=40.0, high=90.0)
    tree["slice_overhead"].update(seconds=2.0)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(tree))
    cost = run_annotation_cost(_file(tmp_path), load_cost_model(path))
    assert cost is not None and cost.seconds == pytest.approx(120 + 10 + 14 + 6 + 10 + 5 * 2)


@pytest.mark.parametrize("change, problem", [
    (lambda t: t["box"].update(seconds=50.0), "low <= seconds <= high"),
    (lambda t: t.pop("tag"), "tag"),
    (lambda t: t["click"].update(colour=1), "unknown key"),
])
def test_bad_cost_model_names_file_and_key(tmp_path, change, problem):
    tree = yaml.safe_load(cost_model_path().read_text())
    change(tree)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match=problem) as err:
        load_cost_model(path)
    assert str(path) in str(err.value)


def test_shipped_cost_model_follows_the_shared_defaults():
    model = load_cost_model()
    # ../shared/methods/annotation-cost.md §2: 20·K, 2.5·K, 7·K, 10·K, 1·K per slice
    assert (model.mask_structure.seconds, model.click.seconds, model.box.seconds, model.scribble.seconds,
            model.tag.seconds) == (20.0, 2.5, 7.0, 10.0, 1.0)
    assert all(entry.rests_on for _, entry in model)
