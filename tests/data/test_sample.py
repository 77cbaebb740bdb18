"""The ACDC sample bundled in the package: it loads, matches its manifest, and rebuilds byte-identically."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from frugalseg.data.sample import sample_path
from frugalseg.data.sources import detect_format, open_source
from tests.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SHARED_ACDC = REPO.parent / "shared" / "data" / "ACDC"
PATIENTS = ["patient099", "patient038", "patient050", "patient100"]


def test_sample_path_is_an_acdc_folder():
    root = sample_path()
    assert root.is_dir() and detect_format(root) == "acdc_h5"


def test_sample_counts_classes_and_shapes():
    src = open_source(sample_path())
    assert src.classes == {1: "RV", 2: "Myo", 3: "LV"}
    assert src.case_ids("train") == [f"{p}_frame0{f}" for p in PATIENTS for f in (1, 2)]
    assert src.case_ids("val") == ["patient028_frame01", "patient028_frame02"]
    items = src.training_slices()
    assert len(items) == 84
    # "first k patients" = the first N lines of train_slices.list, as on the full data (32 and 68 slices there)
    patients = list(dict.fromkeys(it.patient_id for it in items))
    assert patients == PATIENTS
    assert [sum(it.patient_id in PATIENTS[:k] for it in items) for k in (1, 3)] == [32, 68]
    assert items[0].item_id == "patient099_frame01_slice_15" and items[0].shape == (112, 77)  # 224 x 154 halved
    for it in items:
        assert it.image.dtype == np.float32 and it.label.dtype == np.uint8
        assert 0.0 <= it.image.min() and it.image.max() <= 1.0
        np.testing.assert_array_equal(it.image * 256, np.round(it.image * 256))  # stored in steps of 1/256
    assert {int(v) for it in items for v in np.unique(it.label)} == {0, 1, 2, 3}
    val = src.load_case("patient028_frame01")
    assert val.image.shape == (10, 128, 112) and val.label.shape == (10, 128, 112)
    assert set(np.unique(val.label).tolist()) == {0, 1, 2, 3}
    assert src.load_case("patient100_frame02").image.shape[0] == sum(
        it.case_id == "patient100_frame02" for it in items)


def test_sample_matches_its_manifest():
    root = sample_path()
    lines = (root / "SHA256SUMS").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = line.split("  ", 1)
        listed[name] = digest
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    size = sum((root / name).stat().st_size for name in on_disk)
    assert size < 3_000_000


def _built_with() -> str:
    """The h5py/HDF5 versions the sample's README says it was built with: other versions may write other bytes."""
    match = re.search(r"built with h5py (\S+),\s+HDF5 (\S+)\)", (sample_path() / "README.md").read_text())
    return f"{match[1]}/{match[2]}" if match else "unknown"


@pytest.mark.skipif(not SHARED_ACDC.is_dir(), reason="needs the full ACDC data in ../shared/data/ACDC")
@pytest.mark.skipif(_built_with() != f"{h5py.version.version}/{h5py.version.hdf5_version}",
                    reason="the sample was built with other h5py/HDF5 versions")
def test_sample_rebuilds_byte_identically():
    module = load_script(REPO / "scripts" / "make_sample.py")
    assert module.main(["--source", str(SHARED_ACDC), "--out", str(sample_path()), "--verify"]) == 0
