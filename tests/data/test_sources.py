"""The three file-format sources on tiny fixtures written in ``tmp_path``; no shared data needed."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from frugalseg.data.sources import SOURCES, detect_format, open_source
from frugalseg.data.sources.acdc_h5 import AcdcH5Source
from frugalseg.data.sources.nnunet_raw import NnunetRawSource, normalise_intensities, to_nifti
from frugalseg.data.sources.png_folder import PngFolderSource
from frugalseg.errors import DataError

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------------- ACDC HDF5


def _write_h5(path: Path, image: np.ndarray | None, label: np.ndarray | None) -> None:
    with h5py.File(path, "w") as f:
        if image is not None:
            f.create_dataset("image", data=image.astype(np.float32), compression="gzip")
        if label is not None:
            f.create_dataset("label", data=label.astype(np.uint8), compression="gzip")


def _volume(d: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return RNG.random((d, h, w)).astype(np.float32), RNG.integers(0, 4, (d, h, w)).astype(np.uint8)


@pytest.fixture()
def acdc(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Two training cases stored as slices (1-based, listed out of order) and one validation volume."""
    root = tmp_path / "ACDC"
    (root / "data").mkdir(parents=True)
    volumes = {"patient010_frame01": _volume(3, 8, 6), "patient002_frame02": _volume(2, 5, 7),
               "patient005_frame01": _volume(4, 6, 6)}
    for case in ("patient010_frame01", "patient002_frame02"):
        image, label = volumes[case]
        for z in range(image.shape[0]):
            _write_h5(root / "data" / f"{case}_slice_{z + 1}.h5", image[z], label[z])
    _write_h5(root / "data" / "patient005_frame01.h5", *volumes["patient005_frame01"])
    slices = ["patient010_frame01_slice_3", "patient010_frame01_slice_1", "patient010_frame01_slice_2",
              "patient002_frame02_slice_2", "patient002_frame02_slice_1"]
    (root / "train_slices.list").write_text("\n".join(slices) + "\n")
    (root / "train.list").write_text("patient010_frame01\npatient002_frame02\n")
    (root / "val.list").write_text("patient005_frame01\n")
    return root, volumes


def test_acdc_splits_classes_and_patients(acdc):
    root, _ = acdc
    src = open_source(root)
    assert isinstance(src, AcdcH5Source) and src.name == "acdc_h5"
    assert src.classes == {1: "RV", 2: "Myo", 3: "LV"} and src.num_classes == 4
    assert src.case_ids("train") == ["patient010_frame01", "patient002_frame02"]  # the list's order, not sorted
    assert src.case_ids("val") == ["patient005_frame01"]
    assert src.case_ids("all") == ["patient010_frame01", "patient002_frame02", "patient005_frame01"]
    assert src.patient_of("patient028_frame01") == "patient028"
    with pytest.raises(ValueError, match="split"):
        src.case_ids("test")


def test_acdc_training_slices_follow_the_slice_list(acdc):
    root, volumes = acdc
    items = open_source(root).training_slices()
    assert [it.item_id for it in items] == (root / "train_slices.list").read_text().split()
    first = items[0]
    assert (first.case_id, first.patient_id, first.spacing) == ("patient010_frame01", "patient010", None)
    image, label = volumes["patient010_frame01"]
    np.testing.assert_array_equal(first.image, image[2])  # slice_3 is the third slice
    np.testing.assert_array_equal(first.label, label[2])
    assert first.image.dtype == np.float32 and first.label.dtype == np.uint8


def test_acdc_training_slices_of_chosen_cases(acdc):
    root, _ = acdc
    src = open_source(root)
    items = src.training_slices(["patient005_frame01", "patient002_frame02"])
    # listed slices first in the list's order, then the validation volume split along its first axis
    assert [it.item_id for it in items] == ["patient002_frame02_slice_2", "patient002_frame02_slice_1"] + [
        f"patient005_frame01_slice_{k}" for k in range(1, 5)]


def test_acdc_load_case_stacks_slices_and_reads_volumes(acdc):
    root, volumes = acdc
    src = open_source(root)
    for case_id, (image, label) in volumes.items():
        case = src.load_case(case_id)
        np.testing.assert_array_equal(case.image, image)
        np.testing.assert_array_equal(case.label, label)
        assert case.spacing is None and case.is_volume
    ids = [it.item_id for it in src.slices_of(src.load_case("patient010_frame01"))]
    assert ids == ["patient010_frame01_slice_1", "patient010_frame01_slice_2", "patient010_frame01_slice_3"]


def test_acdc_truncated_file_names_itself(acdc):
    root, _ = acdc
    bad = root / "data" / "patient010_frame01_slice_2.h5"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataError, match="slice_2.h5") as info:
        open_source(root).training_slices()
    assert info.value.path == bad


@pytest.mark.parametrize("missing", ["image", "label"])
def test_acdc_missing_dataset(acdc, missing):
    root, _ = acdc
    bad = root / "data" / "patient002_frame02_slice_1.h5"
    image, label = RNG.random((5, 7)), np.zeros((5, 7))
    _write_h5(bad, None if missing == "image" else image, None if missing == "label" else label)
    with pytest.raises(DataError, match=f"no dataset '{missing}'") as info:
        open_source(root).training_slices()
    assert info.value.path == bad


def test_acdc_label_shape_mismatch(acdc):
    root, _ = acdc
    bad = root / "data" / "patient005_frame01.h5"
    _write_h5(bad, RNG.random((4, 6, 6)), np.zeros((4, 6, 5)))
    with pytest.raises(DataError, match="label shape") as info:
        open_source(root).load_case("patient005_frame01")
    assert info.value.path == bad


def test_acdc_out_of_range_label(acdc):
    root, _ = acdc
    bad = root / "data" / "patient002_frame02_slice_1.h5"
    _write_h5(bad, RNG.random((5, 7)), np.full((5, 7), 7))
    with pytest.raises(DataError, match="class 7") as info:
        open_source(root).training_slices()
    assert info.value.path == bad


def test_acdc_list_naming_a_missing_file(acdc):
    root, _ = acdc
    (root / "train_slices.list").write_text("patient010_frame01_slice_1\npatient010_frame01_slice_9\n")
    with pytest.raises(DataError, match="train_slices.list") as info:
        open_source(root).training_slices()
    assert info.value.path == root / "data" / "patient010_frame01_slice_9.h5"
    (root / "val.list").write_text("patient077_frame01\n")
    with pytest.raises(DataError, match="patient077_frame01.h5"):
        open_source(root).load_case("patient077_frame01")


def test_acdc_gap_in_slice_files(acdc):
    root, _ = acdc
    (root / "data" / "patient010_frame01_slice_2.h5").unlink()
    with pytest.raises(DataError, match="slice_2.h5"):
        open_source(root).load_case("patient010_frame01")


def test_acdc_without_slice_list_reads_train_cases(acdc):
    root, _ = acdc
    (root / "train_slices.list").unlink()
    items = open_source(root).training_slices()
    assert [it.item_id for it in items][:3] == [f"patient010_frame01_slice_{k}" for k in (1, 2, 3)]
    assert len(items) == 5


# ----------------------------------------------------------------------------------------- nnU-Net raw


def _write_nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...] = (0.8, 0.7, 5.0),
                 affine: np.ndarray | None = None) -> None:
    if affine is None:
        affine = np.diag([*zooms[:3], 1.0])
        affine[:3, 3] = [-10.0, 20.0, 3.0]
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((*zooms, 1.0, 1.0)[: data.ndim])
    nib.save(img, path)


@pytest.fixture()
def nnunet(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A two-case nnU-Net v2 folder; the NIfTI arrays are (i, j, k) = (W, H, D) = (5, 6, 3)."""
    root = tmp_path / "Dataset001_Toy"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    meta = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "LV": 1, "RV": 2},
            "numTraining": 2, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    arrays = {}
    for case in ("toy_002", "toy_001"):
        image = RNG.normal(100, 30, (5, 6, 3)).astype(np.float32)
        label = RNG.integers(0, 3, (5, 6, 3)).astype(np.uint8)
        _write_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", image)
        _write_nifti(root / "labelsTr" / f"{case}.nii.gz", label)
        arrays[case] = (image, label)
    _write_nifti(root / "imagesTs" / "toy_101_0000.nii.gz", RNG.random((5, 6, 3)).astype(np.float32))
    return root, arrays


def test_nnunet_reads_cases_as_d_h_w(nnunet):
    root, arrays = nnunet
    src = open_source(root)
    assert isinstance(src, NnunetRawSource) and src.name == "nnunet_raw"
    assert src.classes == {1: "LV", 2: "RV"}
    assert src.case_ids("train") == ["toy_001", "toy_002"] and src.case_ids("val") == []
    assert src.case_ids("test") == ["toy_101"] and src.case_ids("all") == ["toy_001", "toy_002", "toy_101"]
    case = src.load_case("toy_001")
    image, label = arrays["toy_001"]
    assert case.image.shape == (3, 6, 5) and case.image.dtype == np.float32
    assert case.spacing == pytest.approx((5.0, 0.7, 0.8))  # (D, H, W): the NIfTI's third axis first
    np.testing.assert_array_equal(case.label, label.transpose(2, 1, 0))
    np.testing.assert_allclose(case.image, normalise_intensities(image.transpose(2, 1, 0), "minmax"))
    assert case.image.min() == 0.0 and case.image.max() == pytest.approx(1.0)
    assert case.affine is not None and case.affine[0, 3] == -10.0
    assert src.load_case("toy_101").label is None


def test_nnunet_slices_and_nifti_round_trip(nnunet, tmp_path):
    root, arrays = nnunet
    src = open_source(root)
    items = src.training_slices()
    assert [it.item_id for it in items] == [f"toy_00{c}_z{z}" for c in (1, 2) for z in range(3)]
    assert items[0].shape == (6, 5) and items[0].spacing == pytest.approx((0.7, 0.8))
    case = src.load_case("toy_002")
    out = tmp_path / "pred.nii.gz"
    nib.save(to_nifti(case.label, case.affine), out)
    back = nib.load(out)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), arrays["toy_002"][1])
    np.testing.assert_allclose(back.affine, case.affine)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
              elements=st.floats(-3000, 3000, width=32)), st.sampled_from(["minmax", "percentile"]))
def test_normalise_intensities_maps_into_unit_range(image, mode):
    out = normalise_intensities(image, mode)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    if mode == "minmax":
        assert (out.max() == 0.0) == bool(image.min() == image.max())  # constant images become zeros
    order = np.argsort(image, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # the mapping keeps the intensity order


def test_nnunet_ct_percentile_clipping(tmp_path):
    root = tmp_path / "ct"
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                                   "liver": 1}, "file_ending": ".nii.gz"}))
    image = RNG.normal(40, 20, (20, 20, 5)).astype(np.float32)
    image[0, 0, 0] = -2048.0  # padding value: must not decide the scale
    _write_nifti(root / "imagesTr" / "ct_0_0000.nii.gz", image)
    case = open_source(root).load_case("ct_0")
    assert case.image.min() == 0.0 and case.image.max() == pytest.approx(1.0)
    assert np.median(case.image) == pytest.approx(0.5, abs=0.1)  # soft tissue keeps the grey range
    assert NnunetRawSource(root, intensity="minmax").load_case("ct_0").image.mean() > 0.9


def test_nnunet_decathlon_layout(tmp_path):
    root = tmp_path / "Task02_Heart"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "MRI"},
                                                   "labels": {"0": "background", "1": "left atrium"}}))
    _write_nifti(root / "imagesTr" / "la_003.nii.gz", RNG.random((4, 4, 2)).astype(np.float32))
    _write_nifti(root / "labelsTr" / "la_003.nii.gz", np.ones((4, 4, 2), np.uint8))
    (root / "imagesTr" / "._la_003.nii.gz").write_bytes(b"\x00\x05\x16\x07")  # macOS residue in MSD tarballs
    src = open_source(root)
    assert src.classes == {1: "left atrium"} and src.case_ids() == ["la_003"]
    assert src.load_case("la_003").label.sum() == 32


def test_nnunet_label_shape_mismatch_names_the_label(nnunet):
    root, _ = nnunet
    bad = root / "labelsTr" / "toy_002.nii.gz"
    _write_nifti(bad, np.zeros((5, 6, 4), np.uint8))
    with pytest.raises(DataError, match="label shape") as info:
        open_source(root).load_case("toy_002")
    assert info.value.path == bad


def test_nnunet_label_geometry_mismatch(nnunet):
    root, _ = nnunet
    bad = root / "labelsTr" / "toy_002.nii.gz"
    _write_nifti(bad, np.zeros((5, 6, 3), np.uint8), affine=np.eye(4))
    with pytest.raises(DataError, match="geometry") as info:
        open_source(root).load_case("toy_002")
    assert info.value.path == bad


def test_nnunet_unreadable_nifti(nnunet):
    root, _ = nnunet
    bad = root / "imagesTr" / "toy_001_0000.nii.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="unreadable NIfTI") as info:
        open_source(root).load_case("toy_001")
    assert info.value.path == bad
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(DataError, match="toy_001_0000.nii.gz"):
        open_source(root).load_case("toy_001")


def test_nnunet_missing_or_bad_dataset_json(nnunet):
    root, _ = nnunet
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "channel_names": {"0": "T2", "1": "ADC"}}))
    with pytest.raises(DataError, match="single-channel"):
        open_source(root)
    (root / "dataset.json").write_text(json.dumps({**meta, "labels": {"background": 0, "tumour": [1, 2]}}))
    with pytest.raises(DataError, match="region"):
        open_source(root)
    (root / "dataset.json").unlink()
    with pytest.raises(DataError, match="dataset.json") as info:
        NnunetRawSource(root)
    assert info.value.path == root / "dataset.json"


def test_nnunet_second_channel_file_is_an_error(nnunet):
    root, _ = nnunet
    _write_nifti(root / "imagesTr" / "toy_001_0001.nii.gz", np.zeros((5, 6, 3), np.float32))
    with pytest.raises(DataError, match="second channel"):
        open_source(root).case_ids()


def test_nnunet_4d_image_is_an_error(nnunet):
    root, _ = nnunet
    _write_nifti(root / "imagesTr" / "toy_001_0000.nii.gz", np.zeros((5, 6, 3, 2), np.float32))
    with pytest.raises(DataError, match="channels"):
        open_source(root).load_case("toy_001")


# ----------------------------------------------------------------------------------------- PNG folder


@pytest.fixture()
def pngs(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """One 8-bit and one 16-bit image with masks, and one image without a mask."""
    root = tmp_path / "pngs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    img8 = RNG.integers(10, 200, (9, 7)).astype(np.uint8)
    img16 = RNG.integers(100, 60000, (6, 8)).astype(np.uint16)
    mask8 = RNG.integers(0, 3, (9, 7)).astype(np.uint8)
    mask16 = np.zeros((6, 8), np.uint8)
    mask16[2:4, 3:6] = 2
    Image.fromarray(img8).save(root / "images" / "a8.png")
    Image.fromarray(img16).save(root / "images" / "b16.png")
    Image.fromarray(mask8).save(root / "masks" / "a8.png")
    Image.fromarray(mask16).save(root / "masks" / "b16.png")
    Image.fromarray(img8[:5, :5]).save(root / "images" / "c_unlabelled.png")
    return root, {"a8": (img8, mask8), "b16": (img16, mask16)}


def test_png_folder_reads_8_and_16_bit(pngs):
    root, arrays = pngs
    src = open_source(root)
    assert isinstance(src, PngFolderSource) and src.name == "png_folder"
    assert src.case_ids() == ["a8", "b16", "c_unlabelled"] and src.case_ids("val") == []
    assert src.classes == {1: "class_1", 2: "class_2"}  # from the largest mask value
    for case_id, (image, mask) in arrays.items():
        case = src.load_case(case_id)
        expected = (image - image.min()) / (image.max() - image.min())
        np.testing.assert_allclose(case.image, expected, rtol=1e-6)
        assert case.image.dtype == np.float32 and not case.is_volume and case.spacing is None
        np.testing.assert_array_equal(case.label, mask)
    items = src.training_slices()
    assert [it.item_id for it in items] == ["a8", "b16", "c_unlabelled"] and items[2].label is None


def test_png_folder_classes_json_and_palette_mask(pngs):
    root, _ = pngs
    (root / "classes.json").write_text(json.dumps({"0": "background", "1": "lesion", "2": "vessel", "3": "x"}))
    mask = np.zeros((9, 7), np.uint8)
    mask[1, 1] = 3
    pal = Image.fromarray(mask, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.save(root / "masks" / "a8.png")
    src = open_source(root)
    assert src.classes == {1: "lesion", 2: "vessel", 3: "x"}
    assert src.load_case("a8").label[1, 1] == 3


def test_png_folder_grey_saved_as_rgb_is_grey_but_colour_is_an_error(pngs):
    root, arrays = pngs
    grey = arrays["a8"][0]
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(root / "images" / "a8.png")
    np.testing.assert_allclose(open_source(root).load_case("a8").image.max(), 1.0)
    colour = np.stack([grey, grey // 2, grey], axis=-1)
    Image.fromarray(colour).save(root / "images" / "a8.png")
    with pytest.raises(DataError, match="colour image") as info:
        open_source(root).load_case("a8")
    assert info.value.path == root / "images" / "a8.png"


def test_png_folder_bad_masks(pngs):
    root, _ = pngs
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(root / "masks" / "b16.png")
    with pytest.raises(DataError, match="label shape") as info:
        open_source(root).load_case("b16")
    assert info.value.path == root / "masks" / "b16.png"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(root / "masks" / "a8_mask.png")
    with pytest.raises(DataError, match="mask without an image") as info:
        open_source(root).case_ids()
    assert info.value.path == root / "masks" / "a8_mask.png"


def test_png_folder_truncated_png(pngs):
    root, _ = pngs
    bad = root / "images" / "b16.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError, match="unreadable image") as info:
        open_source(root).load_case("b16")
    assert info.value.path == bad


# ----------------------------------------------------------------------------------------- detection


def test_detect_format_recognises_each_layout(acdc, nnunet, pngs):
    assert set(SOURCES) >= {"acdc_h5", "nnunet_raw", "png_folder"}
    assert detect_format(acdc[0]) == "acdc_h5"
    assert detect_format(nnunet[0]) == "nnunet_raw"
    assert detect_format(pngs[0]) == "png_folder"
    assert isinstance(open_source(pngs[0], format="png_folder"), PngFolderSource)


def test_missing_or_unknown_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        detect_format(tmp_path / "nowhere")
    assert info.value.path == tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist"):
        open_source(tmp_path / "nowhere", format="acdc_h5")
    with pytest.raises(DataError, match="not a recognised data layout"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match="data/"):
        AcdcH5Source(tmp_path)
    with pytest.raises(DataError, match="images/"):
        PngFolderSource(tmp_path)
    with pytest.raises(DataError, match="unknown data format"):
        open_source(tmp_path, format="dicom")
