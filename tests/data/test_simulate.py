"""Simulated weak labels: on their classes, tight, reproducible byte for byte, assigned per patient."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.draw import disk
from skimage.measure import label as cc_label
from skimage.measure import regionprops

from frugalseg.data.annotations import Box, dumps_annotations, load_annotations, save_annotations
from frugalseg.data.simulate import (
    BUDGET_KINDS,
    annotator_tags,
    assign_patients,
    budget_path,
    load_budget,
    patient_order,
    simulate_file,
    simulate_items,
    simulate_tags,
)
from frugalseg.data.simulate.budgets import _largest_remainder
from frugalseg.data.types import SliceItem
from frugalseg.errors import ConfigError, DataError, OutputExistsError

CLASSES = {1: "RV", 2: "Myo", 3: "LV"}


def heart(size: int, shift: int, rv: int) -> np.ndarray:
    """A cartoon short-axis slice: LV disk, Myo ring, RV blob, and a two-pixel RV island touching diagonally."""
    lab = np.zeros((size, size), np.uint8)
    c = size // 2 + shift
    lab[disk((c, c), size // 4, shape=lab.shape)] = 2
    lab[disk((c, c), size // 6, shape=lab.shape)] = 3
    if rv:
        lab[disk((c - 2, c - size // 4 - rv), rv, shape=lab.shape)] = 1
        lab[2, 2] = lab[3, 3] = 1  # one component with 8-connectivity, two with 4
    return lab


def make_items(n_patients: int = 6, slices: int = 3, size: int = 48) -> list[SliceItem]:
    items = []
    for p in range(n_patients):
        pid = f"patient{100 - p:03d}"  # data order is not sorted order, as in ACDC's train_slices.list
        for s in range(slices):
            lab = heart(size, (p + s) % 3 - 1, rv=0 if s == slices - 1 else 3 + s)
            if p == 0 and s == 0:
                lab[:] = 0  # a slice with background only
            items.append(SliceItem(f"{pid}_frame01_slice_{s}", f"{pid}_frame01", pid,
                                   np.zeros(lab.shape, np.float32), lab))
    return items


ITEMS = make_items()
BY_ID = {it.item_id: it for it in ITEMS}
SIMPLE = ("points", "scribbles", "boxes", "tags")


def sim(kind: str, seed: int = 0, items: list[SliceItem] | None = None, **kw: object) -> str:
    return dumps_annotations(simulate_items(ITEMS if items is None else items, CLASSES, 4, kind, seed, **kw))


# ---------------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", SIMPLE)
def test_same_seed_same_bytes_any_order(kind: str) -> None:
    shuffled = ITEMS[:]
    random.Random(1).shuffle(shuffled)
    assert sim(kind) == sim(kind) == sim(kind, items=shuffled)


def test_budget_bytes_independent_of_order_when_not_first_patients() -> None:
    budget = {"masks": {"fraction": 0.34}, "rest": {"boxes": 1, "tags": 1, "unlabelled": 1}}
    shuffled = ITEMS[::-1]
    assert sim("budget", budget=budget) == sim("budget", budget=budget, items=shuffled)


@pytest.mark.parametrize(
    "kind, options, digest",
    [("points", {}, "86bd4863883ebf8327ec591f579457365eb1f9f9315b04168bacb3512418ddbd"),
     ("boxes", {"jitter": 2}, "992b68be835ae42f1d89013a87849788556c04371f3d44d20c83b1029a6f6858"),
     ("budget", {"budget": {"masks": {"fraction": 0.3}, "rest": {"points": 1, "tags": 1, "unlabelled": 1}}},
      "5db4f967610123b84f8bd852ba41579ba7f21d824719448fd3c65355e4b3da58")],
)
def test_same_bytes_on_every_machine(kind: str, options: dict, digest: str) -> None:
    """Golden digests: if one changes, every user's simulated files change too, so bump SIMULATOR and say so."""
    assert hashlib.sha256(sim(kind, 7, **options).encode()).hexdigest() == digest


def test_different_seed_different_clicks() -> None:
    a = simulate_items(ITEMS, CLASSES, 4, "points", 0)
    b = simulate_items(ITEMS, CLASSES, 4, "points", 1)
    assert a.items != b.items
    assert sim("scribbles", 0) != sim("scribbles", 1)


def test_seeds_per_item_not_per_position() -> None:
    """An item's labels do not change when other items are added or removed (workers, subsets)."""
    whole = simulate_items(ITEMS, CLASSES, 4, "scribbles", 5)
    alone = simulate_items(ITEMS[4:5], CLASSES, 4, "scribbles", 5)
    assert alone.items[ITEMS[4].item_id] == whole.items[ITEMS[4].item_id]


# ------------------------------------------------------------------------------------------------------- the kinds


def test_points_one_per_class_on_its_class() -> None:
    ann = simulate_items(ITEMS, CLASSES, 4, "points", 0)
    assert ann.classes == {"1": "RV", "2": "Myo", "3": "LV"}
    assert ann.provenance == {"simulated_from": "masks", "simulator": "frugalseg.simulate/1", "kind": "points",
                              "seed": 0, "options": {"include_background": True}}
    for item_id, item in ann.items.items():
        lab = BY_ID[item_id].label
        assert sorted(p.class_ for p in item.points) == sorted(np.unique(lab).tolist())
        assert all(lab[p.y, p.x] == p.class_ for p in item.points)
    no_bg = simulate_items(ITEMS, CLASSES, 4, "points", 0, include_background=False)
    assert all(p.class_ != 0 for it in no_bg.items.values() for p in it.points)


def test_points_are_spread_over_the_class() -> None:
    """Uniform over the class, not the centroid: many seeds hit many different pixels."""
    one = ITEMS[1:2]
    clicks = {simulate_items(one, CLASSES, 4, "points", s).items[one[0].item_id].points[-1].y for s in range(30)}
    assert len(clicks) > 5


def tight_boxes(lab: np.ndarray, connectivity: int) -> set[tuple[int, int, int, int, int]]:
    """Independent reference: skimage's connected components and their bounding boxes."""
    out = set()
    for c in range(1, 4):
        for r in regionprops(cc_label(lab == c, connectivity=2 if connectivity == 8 else 1)):
            y0, x0, y1, x1 = r.bbox
            out.add((c, y0, x0, y1 - 1, x1 - 1))
    return out


@pytest.mark.parametrize("connectivity", [8, 4])
def test_boxes_are_the_tight_boxes_of_the_components(connectivity: int) -> None:
    ann = simulate_items(ITEMS, CLASSES, 4, "boxes", 0, connectivity=connectivity)
    for item_id, item in ann.items.items():
        lab = BY_ID[item_id].label
        got = [(b.class_, b.y0, b.x0, b.y1, b.x1) for b in item.boxes]
        assert len(got) == len(set(got)) and set(got) == tight_boxes(lab, connectivity)
        assert item.tags == sorted(set(np.unique(lab).tolist()) - {0})
    n8 = sum(len(i.boxes) for i in simulate_items(ITEMS, CLASSES, 4, "boxes", 0).items.values())
    n4 = sum(len(i.boxes) for i in ann.items.values())
    assert connectivity == 8 or n4 > n8  # the diagonal RV island is split under 4-connectivity


def test_box_options() -> None:
    small = simulate_items(ITEMS, CLASSES, 4, "boxes", 0, min_size=3, with_tags=False)
    assert all(not (b.y1 - b.y0 < 2 and b.class_ == 1) for it in small.items.values() for b in it.boxes)
    assert all(it.tags is None for it in small.items.values())
    jit = simulate_items(ITEMS, CLASSES, 4, "boxes", 0, jitter=3)
    tight = simulate_items(ITEMS, CLASSES, 4, "boxes", 0)
    assert jit != tight and sim("boxes", jitter=3) == sim("boxes", jitter=3)
    for it in jit.items.values():
        assert all(0 <= b.y0 <= b.y1 < 48 and 0 <= b.x0 <= b.x1 < 48 for b in it.boxes)


def test_box_corruption_is_reproducible_and_recorded() -> None:
    """Noisy boxes (DII + DCR's evidence): which boxes are corrupted is drawn from the seed and listed in provenance."""
    opts = {"corrupt_fraction": 0.4, "corruption": "mixed", "corrupt_shift": 0.5}
    noisy = simulate_items(ITEMS, CLASSES, 4, "boxes", 3, **opts)
    tight = simulate_items(ITEMS, CLASSES, 4, "boxes", 3)
    assert sim("boxes", 3, **opts) == sim("boxes", 3, **opts)  # same seed, same bytes
    assert sim("boxes", 3, **opts) != sim("boxes", 4, **opts)
    bad = noisy.provenance["corrupted_boxes"]
    assert noisy.provenance["options"]["corrupt_fraction"] == 0.4
    n_boxes = sum(len(it.boxes) for it in tight.items.values())
    n_bad = sum(len(v) for v in bad.values())
    assert 0 < n_bad < n_boxes
    for item_id, item in noisy.items.items():
        clean = tight.items[item_id].boxes
        assert len(item.boxes) == len(clean)
        assert item.tags == annotator_tags(tight.items[item_id].tags or [], item.boxes)
        for k, (b, c) in enumerate(zip(item.boxes, clean)):
            if k not in bad.get(item_id, []):
                assert b == c
                continue
            assert b != c
            if b.class_ != c.class_:  # a class change keeps the box where it was
                assert (b.y0, b.x0, b.y1, b.x1) == (c.y0, c.x0, c.y1, c.x1) and b.class_ in (1, 2, 3)
            else:  # a shift keeps the size and stays inside the image
                assert (b.y1 - b.y0, b.x1 - b.x0) == (c.y1 - c.y0, c.x1 - c.x0)
                assert 0 <= b.y0 and b.y1 < 48 and 0 <= b.x0 and b.x1 < 48


def test_tags_of_noisy_boxes_stay_the_truth_plus_the_classes_boxed() -> None:
    def box(c: int) -> Box:
        return Box.model_validate({"class": c, "y0": 0, "x0": 0, "y1": 1, "x1": 1})

    assert annotator_tags([1, 2, 3], [box(1), box(2), box(3)]) == [1, 2, 3]  # no corruption: the classes present
    assert annotator_tags([1, 2, 3], [box(2), box(2), box(3)]) == [1, 2, 3]  # the RV's box called Myo: RV kept
    assert annotator_tags([1, 2], [box(3), box(2)]) == [1, 2, 3]  # a box called LV on a slice without LV


def test_every_noisy_file_is_one_frugalseg_accepts(tmp_path) -> None:
    """A box given a class absent from the slice, with the true tags, would contradict them: the file is saved."""
    everything = simulate_items(ITEMS, CLASSES, 4, "boxes", 0, corrupt_fraction=1.0, corruption="class")
    absent = [(i, b.class_) for i, it in everything.items.items() for b in it.boxes
              if b.class_ not in simulate_tags(next(x.label for x in ITEMS if x.item_id == i))]
    assert absent  # the case under test happens
    save_annotations(everything, tmp_path / "noisy.json")
    assert load_annotations(tmp_path / "noisy.json") == everything


def test_box_corruption_off_by_default_changes_nothing() -> None:
    plain = simulate_items(ITEMS, CLASSES, 4, "boxes", 0)
    assert "corrupted_boxes" not in plain.provenance and "corrupt_fraction" not in plain.provenance["options"]
    assert sim("boxes", 0, corrupt_fraction=0.0, corruption="class") == sim("boxes", 0)
    everything = simulate_items(ITEMS, CLASSES, 4, "boxes", 0, corrupt_fraction=1.0, corruption="class")
    assert all(b.class_ != c.class_ for item_id, it in everything.items.items()
               for b, c in zip(it.boxes, plain.items[item_id].boxes))


def test_box_corruption_in_a_budget_and_bad_options() -> None:
    budget = {"masks": {"fraction": 0.34}, "rest": {"boxes": 1},
              "options": {"boxes": {"corrupt_fraction": 0.5, "corruption": "shift"}}}
    ann = simulate_items(ITEMS, CLASSES, 4, "budget", 0, budget=budget)
    assert ann.provenance["corrupted_boxes"] and ann.provenance["options"]["boxes"]["corruption"] == "shift"
    for bad, words in [({"corrupt_fraction": 1.5}, "corrupt_fraction"), ({"corruption": "swap"}, "corruption"),
                       ({"corrupt_shift": 0}, "corrupt_shift"), ({"corrupt_fraction": "a lot"}, "corrupt_fraction")]:
        with pytest.raises(ConfigError, match=words):
            simulate_items(ITEMS, CLASSES, 4, "boxes", 0, **bad)
    binary = [SliceItem(it.item_id, it.case_id, it.patient_id, it.image, (it.label > 0).astype(np.uint8))
              for it in ITEMS[:3]]
    with pytest.raises(ConfigError, match="two foreground classes"):
        simulate_items(binary, {1: "heart"}, 2, "boxes", 0, corrupt_fraction=0.5, corruption="class")
    shifted = simulate_items(binary, {1: "heart"}, 2, "boxes", 0, corrupt_fraction=0.5, corruption="shift")
    assert "corrupted_boxes" in shifted.provenance


def test_tags_are_the_classes_present() -> None:
    ann = simulate_items(ITEMS, CLASSES, 4, "tags", 0)
    assert len(ann.items) == len(ITEMS)
    for item_id, item in ann.items.items():
        assert item.tags == sorted(set(np.unique(BY_ID[item_id].label).tolist()) - {0})
    assert ann.items[ITEMS[0].item_id].tags == []  # background only: labelled, nothing present


def test_scribbles_lie_on_their_class_and_are_sparse() -> None:
    ann = simulate_items(ITEMS, CLASSES, 4, "scribbles", 0)
    for item_id, item in ann.items.items():
        lab = BY_ID[item_id].label
        assert {s.class_ for s in item.scribbles} == set(np.unique(lab).tolist())  # every class present is scribbled
        for s in item.scribbles:
            px = np.array(s.path)
            assert (lab[px[:, 0], px[:, 1]] == s.class_).all()
            assert len({tuple(p) for p in s.path}) == len(s.path)
            assert len(s.path) < (lab == s.class_).sum() or len(s.path) <= 2
    no_bg = simulate_items(ITEMS, CLASSES, 4, "scribbles", 0, include_background=False)
    assert all(s.class_ != 0 for it in no_bg.items.values() for s in it.scribbles)


def test_scribbles_survive_strong_erosion_and_jitter() -> None:
    """WSL4MIS's own defaults (erosion 4-10, large shifts) can wipe a thin ring; we keep a scribble anyway."""
    lab = heart(96, 0, rv=8)
    item = SliceItem("x", "x", "x", np.zeros(lab.shape, np.float32), lab)
    for seed in range(3):
        ann = simulate_items([item], CLASSES, 4, "scribbles", seed, erosion=[4, 10], erosion_min_area=10,
                             perturb_min_area=10, max_shift=20, max_rotation=90)
        scr = ann.items["x"].scribbles
        assert {s.class_ for s in scr} == {0, 1, 2, 3}
        assert all((lab[tuple(np.array(s.path).T)] == s.class_).all() for s in scr)


# --------------------------------------------------------------------------------------------------------- budgets


def kind_of(item: object) -> str:
    """Which kind of annotation an item of a simulated file holds (boxes items carry tags too)."""
    if item is None:
        return "unlabelled"
    for kind in ("mask", "points", "scribbles", "boxes"):
        if getattr(item, kind):
            return "masks" if kind == "mask" else kind
    return "tags"


def test_budget_first_patients_and_per_patient_assignment() -> None:
    budget = {"masks": {"first_patients": 2}, "rest": {"boxes": 1, "tags": 1, "unlabelled": 2}}
    ann = simulate_items(ITEMS, CLASSES, 4, "budget", 3, budget=budget)
    per_patient: dict[str, set[str]] = {}
    for it in ITEMS:
        per_patient.setdefault(it.patient_id, set()).add(kind_of(ann.items.get(it.item_id)))
    assert all(len(kinds) == 1 for kinds in per_patient.values())  # never mixed within a patient
    order = patient_order(ITEMS)
    assert [p for p in order if per_patient[p] == {"masks"}] == order[:2]
    assignment = assign_patients(order, load_budget(budget), 3)
    assert [p for p in order if assignment[p] == "masks"] == order[:2]  # the data's order, not sorted order
    counts = {k: sum(v == k for v in assignment.values()) for k in BUDGET_KINDS}
    assert counts == {"masks": 2, "scribbles": 0, "points": 0, "boxes": 1, "tags": 1, "unlabelled": 2}
    assert ann.provenance["patients"] == {k: sorted(p for p in order if assignment[p] == k)
                                          for k in ("masks", "boxes", "tags", "unlabelled")}
    alone = {k: simulate_items(ITEMS, CLASSES, 4, k, 3).items for k in ("boxes", "tags")}
    for it in ITEMS:
        kind, got = assignment[it.patient_id], ann.items.get(it.item_id)
        if kind == "unlabelled":
            assert got is None
        elif kind == "masks":
            assert got is not None and got.mask and not got.points and not got.boxes
        else:  # the same labels as simulating that kind alone with the same seed
            assert got == alone[kind][it.item_id]


def test_budget_fraction_and_ssl4mis_counts() -> None:
    patients = [f"p{i:02d}" for i in range(70)]
    plan = load_budget({"masks": {"fraction": 0.1}, "rest": {"boxes": 1}})
    got = assign_patients(patients, plan, 0)
    assert sum(v == "masks" for v in got.values()) == 7
    assert assign_patients(patients, plan, 0) == got and assign_patients(patients, plan, 1) != got
    mix = assign_patients(patients, load_budget("masks3_boxes_tags"), 0)
    assert [p for p in patients if mix[p] == "masks"] == patients[:3]
    assert sorted(sum(v == k for v in mix.values()) for k in ("boxes", "tags", "unlabelled")) == [22, 22, 23]


def test_largest_remainder() -> None:
    assert _largest_remainder(67, {"boxes": 1, "tags": 1, "unlabelled": 1}) == {"boxes": 23, "tags": 22,
                                                                                 "unlabelled": 22}
    assert _largest_remainder(10, {"boxes": 0.4, "tags": 0.3, "unlabelled": 0.3}) == {"boxes": 4, "tags": 3,
                                                                                      "unlabelled": 3}


@given(total=st.integers(0, 200), weights=st.lists(st.integers(0, 9), min_size=6, max_size=6))
def test_largest_remainder_property(total: int, weights: list[int]) -> None:
    if not any(weights):
        return
    w = dict(zip(BUDGET_KINDS, weights))
    counts = _largest_remainder(total, w)
    assert sum(counts.values()) == total
    for k, n in counts.items():
        exact = total * w[k] / sum(weights)
        assert exact - 1 < n < exact + 1


SHIPPED_BUDGETS = sorted(p.stem for p in budget_path("all_masks").parent.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_BUDGETS)
def test_shipped_budgets_make_files_frugalseg_accepts(name: str, tmp_path: Path) -> None:
    """Every shipped budget, simulated on the bundled sample (at most its 4 patients masked), gives a file
    that saves and reads back: the simulation never writes what the annotation checks refuse."""
    from frugalseg.data.sources import open_source
    from tests.helpers import sample_root

    assert budget_path(name).suffix == ".yaml" and len(SHIPPED_BUDGETS) >= 10
    budget = load_budget(name)
    if budget.masks is not None and (budget.masks.first_patients or 0) > 3:
        budget = budget.model_copy(update={"masks": budget.masks.model_copy(update={"first_patients": 3})})
    source = open_source(sample_root())
    ann = simulate_items(source.training_slices(source.case_ids("train")), source.classes, source.num_classes,
                         "budget", 0, budget=budget)
    save_annotations(ann, tmp_path / f"{name}.json")
    assert load_annotations(tmp_path / f"{name}.json") == ann


@pytest.mark.parametrize(
    "budget, words",
    [({"rest": {"boxs": 1}}, "unknown kind"), ({"masks": {"first_patients": 1, "fraction": 0.5}}, "exactly one"),
     ({"masks": {"first_patients": 99}}, "first_patients = 99"), ({"rest": {"boxes": 0}}, "positive weight"),
     ({"options": {"boxes": {"conectivity": 4}}}, "conectivity"), ({"mask": {}}, "unknown key"),
     ("no_such_budget", "no such budget")],
)
def test_bad_budgets(budget: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        simulate_items(ITEMS, CLASSES, 4, "budget", 0, budget=budget)


def test_budget_file_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text("rest: {boxes: -1}\n")
    with pytest.raises(ConfigError, match=str(f)):
        load_budget(f)


# ---------------------------------------------------------------------------------------------------------- inputs


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="unknown simulation kind"):
        simulate_items(ITEMS, CLASSES, 4, "clicks", 0)
    with pytest.raises(ConfigError, match="unknown option"):
        simulate_items(ITEMS, CLASSES, 4, "points", 0, background=False)
    with pytest.raises(ConfigError, match="seed"):
        simulate_items(ITEMS, CLASSES, 4, "points", -1)
    with pytest.raises(ConfigError, match="budget"):
        simulate_items(ITEMS, CLASSES, 4, "budget", 0)
    unlabelled = SliceItem("u", "u", "u", np.zeros((4, 4), np.float32), None)
    with pytest.raises(DataError, match="'u' has no mask"):
        simulate_items([unlabelled], CLASSES, 4, "tags", 0)
    too_many = SliceItem("t", "t", "t", np.zeros((4, 4), np.float32), np.full((4, 4), 4, np.uint8))
    with pytest.raises(DataError, match="4 classes"):
        simulate_items([too_many], CLASSES, 4, "tags", 0)
    # an unlabelled patient of a budget needs no mask
    ann = simulate_items([unlabelled], CLASSES, 4, "budget", 0, budget={"rest": {"unlabelled": 1}})
    assert ann.items == {}


def test_simulate_file_refuses_to_overwrite_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "ann.json"
    out.write_text("keep")
    with pytest.raises(OutputExistsError):
        simulate_file(tmp_path / "no-data-here", "points", 0, out)  # refused before the data is opened
    assert out.read_text() == "keep"
    with pytest.raises(ConfigError, match="unknown option"):
        simulate_file(tmp_path / "no-data-here", "points", 0, tmp_path / "x.json", nonsense=1)


def test_simulate_file_on_the_bundled_sample(tmp_path: Path) -> None:
    sample = pytest.importorskip("frugalseg.data.sample")
    try:
        root = sample.sample_path()
    except FileNotFoundError:
        pytest.skip("bundled sample not built")
    out = tmp_path / "ann.json"
    ann = simulate_file(root, "budget", 0, out, budget="masks3_boxes_tags")
    from frugalseg.data.sources import open_source

    items = open_source(root).training_slices()
    assert load_annotations(out, grids={i.item_id: i.shape for i in items}) == ann
    first = patient_order(items)[0]
    assert all(ann.items[i.item_id].mask for i in items if i.patient_id == first)
    pts = simulate_file(root, "points", 0, tmp_path / "p.json")
    assert all(i.label[p.y, p.x] == p.class_ for i in items for p in pts.items[i.item_id].points)
