"""Metrics: hand values, equality with medpy's definitions (re-implemented here with scipy), empty rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from frugalseg.evaluation.metrics import (
    VolumeResult,
    compute_volume_metrics,
    empty_distance,
    summarise,
    surface_distances,
)


# --------------------------------------------------------------------------- medpy's definitions, by hand
def medpy_surface_distances(result: np.ndarray, reference: np.ndarray, spacing=None) -> np.ndarray:
    """medpy.metric.binary.__surface_distances with its default ``connectivity=1`` (the cross)."""
    footprint = generate_binary_structure(result.ndim, 1)
    result_border = result ^ binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ binary_erosion(reference, structure=footprint, iterations=1)
    dt = distance_transform_edt(~reference_border, sampling=spacing)
    return dt[result_border]


def medpy_hd95(result, reference, spacing=None) -> float:
    """medpy hd95: the 95th percentile of both directions' distances *pooled* (not the max of two percentiles)."""
    d1 = medpy_surface_distances(result, reference, spacing)
    d2 = medpy_surface_distances(reference, result, spacing)
    return float(np.percentile(np.hstack((d1, d2)), 95))


def medpy_asd(result, reference, spacing=None) -> float:
    """medpy asd: mean distance from ``result``'s surface to ``reference``'s (one direction)."""
    return float(medpy_surface_distances(result, reference, spacing).mean())


def medpy_assd(result, reference, spacing=None) -> float:
    return float(np.mean((medpy_asd(result, reference, spacing), medpy_asd(reference, result, spacing))))


def check_against_medpy(pred: np.ndarray, ref: np.ndarray, spacing=None) -> VolumeResult:
    """Score binary masks as class 1 and compare with the medpy definitions."""
    res = compute_volume_metrics(pred.astype(np.uint8), ref.astype(np.uint8), 2, spacing=spacing)
    assert res.hd95[0] == pytest.approx(medpy_hd95(pred, ref, spacing), rel=1e-6, abs=1e-6)
    assert res.asd[0] == pytest.approx(medpy_asd(pred, ref, spacing), rel=1e-6, abs=1e-6)
    assert res.assd[0] == pytest.approx(medpy_assd(pred, ref, spacing), rel=1e-6, abs=1e-6)
    inter = np.logical_and(pred, ref).sum()
    assert res.dice[0] == pytest.approx(2 * inter / (pred.sum() + ref.sum()))
    assert res.jaccard[0] == pytest.approx(inter / np.logical_or(pred, ref).sum())
    return res


def square(shape, top, left, side) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[top:top + side, left:left + side] = True
    return m


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


# --------------------------------------------------------------------------------------------- overlap
def test_dice_and_jaccard_by_hand():
    pred = np.array([[1, 1, 0, 2], [0, 1, 0, 2], [0, 0, 0, 0]])
    ref = np.array([[1, 0, 0, 2], [1, 1, 0, 0], [0, 0, 3, 0]])
    res = compute_volume_metrics(pred, ref, 4)
    # class 1: |P|=3 |G|=3 |P∩G|=2 ; class 2: |P|=2 |G|=1 ∩=1 ; class 3: P empty, G present
    np.testing.assert_allclose(res.dice, [4 / 6, 2 / 3, 0.0])
    np.testing.assert_allclose(res.jaccard, [2 / 4, 1 / 2, 0.0])
    assert res.dice.shape == (3,) and res.units == "voxel"


# ------------------------------------------------------------------------------------ surface distances
def test_two_squares_offset_by_three_pixels_hand_values():
    """10x10 squares, the prediction 3 columns to the left of the reference.

    Directed distances pred -> ref (36 border pixels): top and bottom rows [3, 2, 1, 0 x 7], left column
    8 x 3, right column [1, 2, 3, 3, 3, 3, 2, 1]; the reverse direction is the mirror image. So
    ASD = (4*1 + 4*2 + 14*3) / 36 = 1.5, and 28 of the 72 pooled distances are 3, hence HD95 = 3.
    """
    pred = square((20, 24), 5, 4, 10)
    ref = square((20, 24), 5, 7, 10)
    res = check_against_medpy(pred, ref)
    assert res.hd95[0] == pytest.approx(3.0)
    assert res.asd[0] == pytest.approx(1.5)
    assert res.assd[0] == pytest.approx(1.5)
    assert res.dice[0] == pytest.approx(0.7) and res.jaccard[0] == pytest.approx(70 / 130)


def test_directed_distances_by_hand():
    pred = square((20, 24), 5, 4, 10)
    ref = square((20, 24), 5, 7, 10)
    to_ref, to_pred = surface_distances(pred, ref)
    assert sorted(to_ref) == sorted([3, 2, 1] * 2 + [0] * 14 + [3] * 8 + [1, 2, 3, 3, 3, 3, 2, 1])
    assert sorted(to_pred) == sorted(to_ref)


def test_isotropic_spacing_scales_every_distance():
    pred, ref = square((20, 24), 5, 4, 10), square((20, 24), 5, 7, 10)
    res = check_against_medpy(pred, ref, spacing=(2.5, 2.5))
    assert res.hd95[0] == pytest.approx(7.5) and res.asd[0] == pytest.approx(3.75)
    assert res.units == "mm" and res.dice[0] == pytest.approx(0.7)


def test_sphere_against_shifted_sphere_in_3d():
    pred = ball((24, 26, 28), (12, 13, 14), 7)
    ref = ball((24, 26, 28), (12, 15, 14), 7)  # shifted by 2 voxels along H
    res = check_against_medpy(pred, ref)
    assert 0 < res.asd[0] < 2 and res.hd95[0] == pytest.approx(2.0, abs=0.3)
    check_against_medpy(pred, ref, spacing=(10.0, 1.5, 1.5))  # ACDC-like anisotropic spacing


def test_asd_is_directed_and_assd_symmetric():
    pred = square((30, 30), 5, 5, 6)
    ref = square((30, 30), 5, 5, 12)  # the prediction is the reference's top-left quarter
    forward = compute_volume_metrics(pred.astype(np.uint8), ref.astype(np.uint8), 2)
    backward = compute_volume_metrics(ref.astype(np.uint8), pred.astype(np.uint8), 2)
    assert forward.asd[0] != pytest.approx(backward.asd[0])
    assert forward.assd[0] == pytest.approx(backward.assd[0])
    assert forward.hd95[0] == pytest.approx(backward.hd95[0])
    check_against_medpy(pred, ref)


SHAPES = st.sampled_from([(7, 9), (5, 6, 4), (1, 8, 8)])
MASK_PAIRS = SHAPES.flatmap(lambda shape: st.tuples(arrays(np.bool_, shape), arrays(np.bool_, shape)))


@given(MASK_PAIRS, st.sampled_from([None, (1.0, 2.0, 3.0)]))
def test_random_masks_equal_medpy_including_masks_touching_the_border(masks, spacing):
    pred, ref = masks
    assume(pred.any() and ref.any())
    check_against_medpy(pred, ref, None if spacing is None else spacing[: pred.ndim])


def test_multiclass_volume_scores_each_class_separately():
    pred = np.zeros((6, 20, 20), dtype=np.uint8)
    ref = np.zeros_like(pred)
    pred[1:5, 2:8, 2:8], ref[1:5, 3:9, 2:8] = 1, 1
    pred[2:4, 12:18, 12:18], ref[2:4, 12:18, 12:18] = 3, 3
    res = compute_volume_metrics(pred, ref, 4, case_id="v")
    single = check_against_medpy(pred == 1, ref == 1)
    assert res.hd95[0] == pytest.approx(single.hd95[0]) and res.asd[0] == pytest.approx(single.asd[0])
    assert res.dice[2] == 1.0 and res.hd95[2] == 0.0 and res.asd[2] == 0.0
    assert res.case_id == "v" and res.shape == (6, 20, 20)


# ---------------------------------------------------------------------------------------------- empty rules
def test_both_empty_is_a_perfect_score():
    res = compute_volume_metrics(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8), 4)
    for name, value in (("dice", 1.0), ("jaccard", 1.0), ("hd95", 0.0), ("asd", 0.0), ("assd", 0.0)):
        np.testing.assert_array_equal(res.metric(name), value)
    assert res.pred_empty.all() and res.ref_empty.all()


@pytest.mark.parametrize("spacing", [None, (10.0, 1.5, 1.25)])
@pytest.mark.parametrize("missing", ["pred", "ref"])
def test_one_side_empty_scores_zero_overlap_and_the_volume_diagonal(missing, spacing):
    present = np.zeros((4, 10, 12), np.uint8)
    present[1:3, 2:6, 3:7] = 2
    empty = np.zeros_like(present)
    pred, ref = (empty, present) if missing == "pred" else (present, empty)
    res = compute_volume_metrics(pred, ref, 3, spacing=spacing)
    diag = math.sqrt(4**2 + 10**2 + 12**2) if spacing is None else math.sqrt(40**2 + 15**2 + 15**2)
    assert empty_distance((4, 10, 12), spacing) == pytest.approx(diag)
    assert res.dice[1] == 0.0 and res.jaccard[1] == 0.0
    assert res.hd95[1] == pytest.approx(diag) and res.asd[1] == pytest.approx(diag) and res.assd[1] == diag
    assert (res.pred_empty[1], res.ref_empty[1]) == ((True, False) if missing == "pred" else (False, True))
    assert res.dice[0] == 1.0 and res.hd95[0] == 0.0  # class 1 empty in both
    assert all(np.isfinite(res.metric(m)).all() for m in ("dice", "jaccard", "hd95", "asd", "assd"))


def test_bad_inputs_raise():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        compute_volume_metrics(a, np.zeros((4, 5), np.uint8), 2)
    with pytest.raises(ValueError, match="spacing"):
        compute_volume_metrics(a, a, 2, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="outside"):
        compute_volume_metrics(a + 2, a, 2)


# ------------------------------------------------------------------------------------------------ summary
def _result(case_id: str, dice: list[float], hd95: list[float], units: str = "voxel") -> VolumeResult:
    n = len(dice)
    return VolumeResult(case_id, np.array(dice), np.array(dice), np.array(hd95), np.array(hd95), np.array(hd95),
                        np.zeros(n, bool), np.array([False, True][:n]), units=units)


def test_summary_means_and_stds_per_class_and_overall():
    results = [_result("a", [1.0, 0.5], [0.0, 4.0]), _result("b", [0.5, 0.0], [2.0, 8.0])]
    s = summarise(results, {1: "RV", 2: "Myo"})
    assert s["n_volumes"] == 2 and s["units"] == "voxel"
    assert s["classes"]["RV"]["dice"] == {"mean": 0.75, "std": 0.25}
    assert s["classes"]["Myo"]["hd95"] == {"mean": 6.0, "std": 2.0}
    # overall: per-volume class means (0.75, 0.25) -> mean 0.5, std 0.25; hd95 (2, 5) -> 3.5 +- 1.5
    assert s["overall"]["dice"] == {"mean": 0.5, "std": 0.25}
    assert s["overall"]["hd95"] == {"mean": 3.5, "std": 1.5}
    assert s["empty"]["Myo"] == {"pred": 0, "ref": 2}
    assert list(summarise(results)["classes"]) == ["1", "2"]


def test_summary_refuses_mixed_units_and_empty_input():
    with pytest.raises(ValueError, match="mix units"):
        summarise([_result("a", [1.0], [0.0]), _result("b", [1.0], [0.0], units="mm")])
    with pytest.raises(ValueError, match="no volume"):
        summarise([])


def test_summary_propagates_nan_instead_of_dropping_it():
    bad = _result("a", [float("nan")], [0.0])
    assert math.isnan(summarise([bad, _result("b", [1.0], [0.0])])["classes"]["1"]["dice"]["mean"])
