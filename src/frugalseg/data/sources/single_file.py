"""One image file as a case, for ``frugalseg predict --input scan.nii.gz`` on a file outside any data folder.

Each format is read by the same function its folder source uses, so intensities are normalised
exactly as in training: NIfTI min-max per volume with the header's affine and spacing (the
prediction is written back in that geometry), SSL4MIS HDF5 as stored, PNG per image.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from frugalseg.data.sources.acdc_h5 import read_h5_scan
from frugalseg.data.sources.nnunet_raw import _read_nifti, normalise_intensities
from frugalseg.data.sources.png_folder import read_grey_png
from frugalseg.data.types import Case
from frugalseg.errors import DataError

SUFFIXES = (".nii.gz", ".nii", ".h5", ".png")


def case_id_of(path: Path) -> str:
    """The file name without its image suffix (``scan.nii.gz`` -> ``scan``)."""
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_single_case(path: str | Path) -> Case:
    """Read ``path`` (``.nii``/``.nii.gz``, ``.h5``, ``.png``) as a :class:`Case`.

    Raises:
        DataError: unknown suffix, or a file its reader rejects (naming the file and the problem).
    """
    path = Path(path)
    name = path.name.lower()
    case_id = case_id_of(path)
    if name.endswith((".nii.gz", ".nii")):
        image, affine, spacing = _read_nifti(path, integer=False)
        return Case(case_id, case_id, normalise_intensities(image, "minmax"), None, spacing, affine)
    if name.endswith(".h5"):
        try:
            with h5py.File(path, "r") as f:
                ndim = f["image"].ndim if isinstance(f.get("image"), h5py.Dataset) else 3
        except OSError as exc:
            raise DataError(path, f"unreadable HDF5 file, truncated or corrupt? ({exc})") from exc
        image, label = read_h5_scan(path, ndim, label_required=False)  # predict reads unlabelled scans
        return Case(case_id, case_id, image, label)
    if name.endswith(".png"):
        return Case(case_id, case_id, np.asarray(read_grey_png(path), dtype=np.float32), None)
    raise DataError(path, f"unknown image type; predict reads {', '.join(SUFFIXES)} files or a data folder")


__all__ = ["SUFFIXES", "case_id_of", "read_single_case"]
