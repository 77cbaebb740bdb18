"""NIfTI output: the input's geometry carried, the source's axis order undone, nothing overwritten by accident."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from frugalseg.data.sources import open_source
from frugalseg.data.types import Case
from frugalseg.errors import OutputExistsError
from frugalseg.evaluation.nifti import case_affine, write_label_nifti

RNG = np.random.default_rng(0)


def _nnunet_folder(root: Path, label: np.ndarray, affine: np.ndarray) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"}, "file_ending": ".nii.gz",
                                                   "labels": {"background": 0, "A": 1, "B": 2}, "numTraining": 1}))
    nib.save(nib.Nifti1Image(RNG.random(label.shape).astype(np.float32), affine), root / "imagesTr" / "c_0000.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / "c.nii.gz")


def test_prediction_for_a_nifti_case_overlays_the_input_file(tmp_path):
    """Read a case through the nnU-Net source, write its label back: same voxels, same affine as the file."""
    affine = np.array([[0.0, 0.0, -1.25, 30.0], [0.8, 0.0, 0.0, -12.0], [0.0, 0.7, 0.0, 5.0], [0, 0, 0, 1]])
    label = RNG.integers(0, 3, (5, 6, 3)).astype(np.uint8)  # NIfTI (i, j, k)
    _nnunet_folder(tmp_path / "ds", label, affine)
    case = open_source(tmp_path / "ds").load_case("c")
    out = write_label_nifti(case.label, case, tmp_path / "pred" / "c.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint8 and img.shape == (5, 6, 3)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), label)
    np.testing.assert_allclose(img.affine, affine)
    assert img.header.get_xyzt_units()[0] == "mm"


@pytest.mark.parametrize(("spacing", "zooms"), [(None, (1.0, 1.0, 1.0)), ((10.0, 1.5, 1.25), (1.25, 1.5, 10.0))])
def test_hdf5_case_gets_a_diagonal_affine_in_nifti_axis_order(tmp_path, spacing, zooms):
    labels = RNG.integers(0, 4, (3, 7, 9)).astype(np.uint8)  # (D, H, W)
    case = Case("patient001_frame01", "patient001", labels.astype(np.float32), None, spacing=spacing)
    img = nib.load(write_label_nifti(labels, case, tmp_path / "p.nii.gz"))
    np.testing.assert_allclose(img.affine, np.diag([*zooms, 1.0]))
    assert img.header.get_zooms() == pytest.approx(zooms)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj).transpose(2, 1, 0), labels)


def test_two_dimensional_case_is_one_slice_thick(tmp_path):
    labels = RNG.integers(0, 2, (7, 9)).astype(np.uint8)
    case = Case("img", "img", labels.astype(np.float32), None, spacing=(0.5, 0.25))
    img = nib.load(write_label_nifti(labels, case, tmp_path / "p.nii"))
    assert img.shape == (9, 7, 1)
    np.testing.assert_allclose(case_affine(case), np.diag([0.25, 0.5, 1.0, 1.0]))
    np.testing.assert_array_equal(np.asanyarray(img.dataobj)[:, :, 0].T, labels)


def test_existing_output_is_not_overwritten_unless_asked(tmp_path):
    labels = np.zeros((2, 4, 4), np.uint8)
    case = Case("c", "c", labels.astype(np.float32), None)
    target = write_label_nifti(labels, case, tmp_path / "c.nii.gz")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_label_nifti(labels + 1, case, target)
    assert np.asanyarray(nib.load(target).dataobj).max() == 0
    write_label_nifti(labels + 1, case, target, overwrite=True)
    assert np.asanyarray(nib.load(target).dataobj).min() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nii.gz"]  # no temporary file left behind


def test_bad_outputs_raise(tmp_path):
    case = Case("c", "c", np.zeros((2, 4, 4), np.float32), None)
    with pytest.raises(ValueError, match="must end in"):
        write_label_nifti(np.zeros((2, 4, 4), np.uint8), case, tmp_path / "c.nrrd")
    with pytest.raises(ValueError, match="do not match"):
        write_label_nifti(np.zeros((2, 4, 5), np.uint8), case, tmp_path / "c.nii.gz")
    with pytest.raises(ValueError, match="not uint8"):
        write_label_nifti(np.full((2, 4, 4), 300), case, tmp_path / "c.nii.gz")
    assert not any(tmp_path.iterdir())
