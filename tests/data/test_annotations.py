"""The annotation file: round trip, byte-deterministic writing, and every rejection naming file, item and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugalseg.data.annotations import (
    FORMAT,
    AnnotationFile,
    Box,
    Item,
    Point,
    Scribble,
    dumps_annotations,
    load_annotations,
    save_annotations,
)
from frugalseg.errors import AnnotationError, OutputExistsError

ITEM = "patient001_frame01_slice_3"
CLASSES = {"1": "RV", "2": "Myo", "3": "LV"}


def example() -> AnnotationFile:
    """Every field of the format once, a volume item included."""
    return AnnotationFile(
        classes=CLASSES,
        items={
            ITEM: Item(
                points=[Point.model_validate({"class": 1, "y": 120, "x": 88}), Point.model_validate(
                    {"class": 0, "y": 0, "x": 0})],
                scribbles=[Scribble.model_validate({"class": 2, "path": [[101, 70], [102, 71]]})],
                boxes=[Box.model_validate({"class": 3, "y0": 90, "x0": 60, "y1": 140, "x1": 118})],
                tags=[1, 2, 3],
                mask=True,
            ),
            "case_b": Item(),
            "vol_a": Item(
                points=[Point.model_validate({"class": 2, "z": 4, "y": 3, "x": 5})],
                boxes=[Box.model_validate({"class": 1, "z": 0, "y0": 1, "x0": 1, "y1": 1, "x1": 1})],
                scribbles=[Scribble.model_validate({"class": 0, "path": [[0, 1, 2], [9, 9, 9]]})],
            ),
            "a_tags_only": Item(tags=[]),
        },
        provenance={"kind": "points", "seed": 0, "options": {"b": [1, 2], "a": 0.5}},
    )


GRIDS = {ITEM: (256, 216), "case_b": (10, 10), "vol_a": (10, 10, 10), "a_tags_only": (5, 5)}


def test_round_trip_and_stable_bytes(tmp_path: Path) -> None:
    ann = example()
    out = tmp_path / "ann.json"
    save_annotations(ann, out)
    back = load_annotations(out, grids=GRIDS)
    assert back == ann
    first = out.read_bytes()
    save_annotations(back, out, overwrite=True)
    assert out.read_bytes() == first
    assert first.endswith(b"}\n") and b"\r" not in first
    assert [p.name for p in tmp_path.iterdir()] == ["ann.json"]  # no temporary file left behind


def test_bytes_do_not_depend_on_insertion_order() -> None:
    ann = example()
    shuffled = AnnotationFile(
        classes=dict(reversed(list(CLASSES.items()))),
        items=dict(reversed(list(ann.items.items()))),
        provenance={"seed": 0, "options": {"a": 0.5, "b": [1, 2]}, "kind": "points"},
    )
    assert dumps_annotations(shuffled) == dumps_annotations(ann)


def test_exact_layout() -> None:
    """The layout is part of the contract (files are compared byte for byte): lock it."""
    ann = AnnotationFile(
        classes={"10": "ten", "2": "two"},
        items={
            "b": Item(points=[Point.model_validate({"class": 2, "y": 1, "x": 2})], tags=[2], mask=True),
            "a": Item(),
        },
        provenance={"seed": 3, "kind": "points"},
    )
    assert dumps_annotations(ann) == (
        "{\n"
        '  "format": "frugalseg.annotations/1",\n'
        '  "classes": {"2": "two", "10": "ten"},\n'
        '  "items": {\n'
        '    "a": {},\n'
        '    "b": {\n'
        '      "points": [{"class": 2, "y": 1, "x": 2}],\n'
        '      "tags": [2],\n'
        '      "mask": true\n'
        "    }\n"
        "  },\n"
        '  "provenance": {\n'
        '    "kind": "points",\n'
        '    "seed": 3\n'
        "  }\n"
        "}\n"
    )
    assert json.loads(dumps_annotations(AnnotationFile(classes={}))) == {
        "format": FORMAT, "classes": {}, "items": {}, "provenance": {}}


_points = st.builds(
    lambda c, y, x: Point.model_validate({"class": c, "y": y, "x": x}),
    st.integers(0, 3), st.integers(0, 31), st.integers(0, 31),
)
_boxes = st.tuples(st.integers(1, 3), st.integers(0, 31), st.integers(0, 31), st.integers(0, 31),
                   st.integers(0, 31)).map(lambda t: Box.model_validate(
                       {"class": t[0], "y0": min(t[1], t[2]), "x0": min(t[3], t[4]), "y1": max(t[1], t[2]),
                        "x1": max(t[3], t[4])}))


def _agreeing(item: Item) -> Item:
    """The item without contradictions the reader refuses: one class per clicked pixel, every labelled class tagged."""
    points = list({(p.y, p.x): p for p in reversed(item.points)}.values())[::-1]
    used = {p.class_ for p in points} | {b.class_ for b in item.boxes}
    tags = None if item.tags is None else sorted(set(item.tags) | (used - {0}))
    return Item(points=points, boxes=item.boxes, tags=tags, mask=item.mask)


_items = st.builds(
    Item,
    points=st.lists(_points, max_size=3),
    boxes=st.lists(_boxes, max_size=2),
    tags=st.none() | st.sets(st.integers(0, 3)).map(sorted),
    mask=st.booleans(),
).map(_agreeing)


@given(items=st.dictionaries(st.text(min_size=1, max_size=8), _items, max_size=4))
def test_round_trip_property(items: dict[str, Item], tmp_path_factory: pytest.TempPathFactory) -> None:
    ann = AnnotationFile(classes=CLASSES, items=items, provenance={"note": "ünïcode ✓"})
    out = tmp_path_factory.mktemp("rt") / "a.json"
    save_annotations(ann, out)
    assert load_annotations(out, grids=dict.fromkeys(items, (32, 32))) == ann


# ---------------------------------------------------------------------------------------------------------- writing


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ann.json"
    out.write_text("precious")
    with pytest.raises(OutputExistsError, match="ann.json"):
        save_annotations(example(), out)
    assert out.read_text() == "precious"
    save_annotations(example(), out, overwrite=True)
    assert load_annotations(out) == example()


def test_save_refuses_an_invalid_file_before_writing(tmp_path: Path) -> None:
    bad = AnnotationFile(classes=CLASSES, items={"x": Item(tags=[7])})
    out = tmp_path / "ann.json"
    with pytest.raises(AnnotationError, match="unknown class 7"):
        save_annotations(bad, out)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------- reading


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def doc(item: dict | None = None, **top: object) -> dict:
    return {"format": FORMAT, "classes": CLASSES, "items": {ITEM: item or {}}, **top}


def load_error(tmp_path: Path, data: object, grids: dict | None = None) -> AnnotationError:
    with pytest.raises(AnnotationError) as info:
        load_annotations(write(tmp_path, data), grids=grids)
    assert str(info.value).startswith(str(tmp_path / "ann.json") + ": ")  # always names the file
    return info.value


def test_unknown_field_names_file_item_and_field(tmp_path: Path) -> None:
    err = load_error(tmp_path, doc({"points": [{"class": 1, "y": 1, "x": 1, "colour": "red"}]}))
    assert str(err).endswith(f"ann.json: item {ITEM!r}, field 'points.0.colour': unknown field")
    assert (err.item, err.field) == (ITEM, "points.0.colour")
    assert load_error(tmp_path, doc({"point": []})).field == "point"
    assert load_error(tmp_path, doc(provenanc={})).field == "provenanc"
    # the Python attribute name is not a spelling of the field
    assert load_error(tmp_path, doc({"points": [{"class_": 1, "y": 1, "x": 1}]})).field == "points.0.class_"


def test_wrong_format_version(tmp_path: Path) -> None:
    err = load_error(tmp_path, {**doc(), "format": "frugalseg.annotations/2", "new_field": 1})
    assert "'frugalseg.annotations/2'" in str(err) and repr(FORMAT) in str(err)
    assert "expected" in str(load_error(tmp_path, {"classes": {}}))


@pytest.mark.parametrize(
    "text, words",
    [("{", "invalid JSON at line 1"), ("[]", "JSON object"), ('{"format": 1, "format": 2}', "duplicate key"),
     ('{"a": NaN}', "NaN")],
)
def test_not_json(tmp_path: Path, text: str, words: str) -> None:
    assert words in str(load_error(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="does not exist"):
        load_annotations(tmp_path / "nope.json")


def test_class_ids(tmp_path: Path) -> None:
    ok = doc({"points": [{"class": 0, "y": 0, "x": 0}], "tags": [0, 3]})
    assert load_annotations(write(tmp_path, ok)).items[ITEM].points[0].class_ == 0  # background is always valid
    err = load_error(tmp_path, doc({"boxes": [{"class": 4, "y0": 0, "x0": 0, "y1": 1, "x1": 1}]}))
    assert (err.item, err.field) == (ITEM, "boxes.0.class") and "unknown class 4" in str(err)
    assert load_error(tmp_path, doc({"scribbles": [{"class": -1, "path": [[0, 0]]}]})).field == "scribbles.0.class"
    assert load_error(tmp_path, doc({"tags": [1, 1]})).field == "tags.1"
    assert load_error(tmp_path, doc({"boxes": [{"class": 0, "y0": 0, "x0": 0, "y1": 1, "x1": 1}]})).field == (
        "boxes.0.class")
    assert load_error(tmp_path, {**doc(), "classes": {"one": "RV"}}).field == "classes.one"


def test_types_are_strict(tmp_path: Path) -> None:
    assert load_error(tmp_path, doc({"points": [{"class": 1, "y": 1.5, "x": 1}]})).field == "points.0.y"
    assert load_error(tmp_path, doc({"points": [{"class": 1, "y": "1", "x": 1}]})).field == "points.0.y"
    assert load_error(tmp_path, doc({"mask": 1})).field == "mask"
    assert load_error(tmp_path, doc({"points": [{"class": 1, "x": 1}]})).field == "points.0.y"


def test_click_outside_the_image(tmp_path: Path) -> None:
    grids = {ITEM: (100, 80)}
    inside = doc({"points": [{"class": 1, "y": 99, "x": 79}]})
    assert load_annotations(write(tmp_path, inside), grids=grids).items[ITEM].points[0].y == 99
    err = load_error(tmp_path, doc({"points": [{"class": 1, "y": 100, "x": 3}]}), grids)
    assert (err.item, err.field) == (ITEM, "points.0.y") and "outside the image" in str(err)
    assert load_error(tmp_path, doc({"points": [{"class": 1, "y": 3, "x": 80}]}), grids).field == "points.0.x"
    assert load_error(tmp_path, doc({"points": [{"class": 1, "y": -1, "x": 3}]})).field == "points.0.y"
    err = load_error(tmp_path, doc({"scribbles": [{"class": 1, "path": [[0, 0], [5, 80]]}]}), grids)
    assert err.field == "scribbles.0.path.1"
    assert load_error(tmp_path, doc({"scribbles": [{"class": 1, "path": [[0, 0, 0]]}]}), grids).field == (
        "scribbles.0.path.0")
    assert load_error(tmp_path, doc({"scribbles": [{"class": 1, "path": []}]})).field == "scribbles.0.path"
    err = load_error(tmp_path, doc({"boxes": [{"class": 1, "y0": 0, "x0": 0, "y1": 100, "x1": 5}]}), grids)
    assert err.field == "boxes.0.y1"


def test_box_corners_ordered(tmp_path: Path) -> None:
    err = load_error(tmp_path, doc({"boxes": [{"class": 1, "y0": 5, "x0": 0, "y1": 4, "x1": 5}]}))
    assert err.field == "boxes.0.y1" and "out of order" in str(err)
    assert load_error(tmp_path, doc({"boxes": [{"class": 1, "y0": 0, "x0": 6, "y1": 4, "x1": 5}]})).field == (
        "boxes.0.x1")
    one_pixel = doc({"boxes": [{"class": 1, "y0": 4, "x0": 5, "y1": 4, "x1": 5}]})  # inclusive corners
    assert len(load_annotations(write(tmp_path, one_pixel)).items[ITEM].boxes) == 1


def test_volume_items_need_z(tmp_path: Path) -> None:
    vol = {ITEM: (4, 10, 10)}
    ok = doc({"points": [{"class": 1, "z": 3, "y": 9, "x": 9}], "scribbles": [{"class": 2, "path": [[3, 1, 1]]}]})
    assert load_annotations(write(tmp_path, ok), grids=vol).items[ITEM].points[0].z == 3
    assert load_error(tmp_path, doc({"points": [{"class": 1, "y": 1, "x": 1}]}), vol).field == "points.0.z"
    assert load_error(tmp_path, doc({"points": [{"class": 1, "z": 4, "y": 1, "x": 1}]}), vol).field == "points.0.z"
    assert load_error(tmp_path, doc({"boxes": [{"class": 1, "z": 0, "y0": 1, "x0": 1, "y1": 1, "x1": 1}]}),
                      {ITEM: (10, 10)}).field == "boxes.0.z"


def test_items_the_data_does_not_have(tmp_path: Path) -> None:
    err = load_error(tmp_path, doc({"mask": True}), {"other": (10, 10)})
    assert err.item == ITEM and "no such item" in str(err)
