"""Write predicted label maps as NIfTI files that overlay their input scan in any viewer.

Axis order. A :class:`~frugalseg.data.types.Case` stores arrays as (D, H, W) = the NIfTI file's
(k, j, i) axes, SimpleITK's and nnU-Net's order; the one place that knows this transpose is
:func:`frugalseg.data.sources.nnunet_raw.to_nifti` (the inverse of how that source reads files), and this
module goes through it rather than transposing on its own, so reading and writing cannot drift apart.

Geometry. A case read from NIfTI carries the file's ``affine``, which is written back unchanged. A case
from a format without geometry (the SSL4MIS HDF5 files, PNG folders) gets a diagonal affine: its
``spacing`` where the source knows one, else 1 per axis (so a viewer shows voxel units).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from frugalseg.data.sources.nnunet_raw import to_nifti
from frugalseg.data.types import Case
from frugalseg.files import atomic_path, refuse_existing

__all__ = ["NIFTI_SUFFIXES", "case_affine", "label_image", "write_label_nifti"]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")


def case_affine(case: Case) -> np.ndarray:
    """The voxel-to-world matrix (in NIfTI axis order) a prediction for ``case`` is written with.

    The case's own ``affine`` when it has one; otherwise ``diag(spacing reversed, 1)`` (array axes
    (D, H, W) are NIfTI axes (k, j, i)), with spacing 1 where the source knows none.
    """
    if case.affine is not None:
        return np.asarray(case.affine, dtype=np.float64)
    ndim = case.image.ndim
    spacing = (1.0,) * ndim if case.spacing is None else tuple(float(s) for s in case.spacing)
    if len(spacing) != ndim:
        raise ValueError(f"case {case.case_id!r}: spacing {spacing} does not fit image shape {case.image.shape}")
    zooms = (*reversed(spacing), 1.0, 1.0)[:3]  # (i, j, k); a 2D case becomes one slice thick
    return np.diag([*zooms, 1.0])


def label_image(labels: np.ndarray, case: Case) -> nib.Nifti1Image:
    """A uint8 NIfTI image of ``labels`` (shaped like ``case.image``) in the geometry of ``case``.

    Raises:
        ValueError: the shapes differ, or a label does not fit in uint8.
    """
    labels = np.asarray(labels)
    if labels.shape != case.image.shape:
        raise ValueError(f"case {case.case_id!r}: labels of shape {labels.shape} do not match the image "
                         f"{case.image.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"case {case.case_id!r}: labels span [{labels.min()}, {labels.max()}], not uint8")
    img = to_nifti(labels.astype(np.uint8), case_affine(case))
    img.set_data_dtype(np.uint8)
    if case.affine is not None or case.spacing is not None:
        img.header.set_xyzt_units(xyz="mm")
    return img


def write_label_nifti(labels: np.ndarray, case: Case, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``labels`` for ``case`` to ``path`` (``.nii.gz`` or ``.nii``), atomically.

    The file is written next to its target under a temporary name and renamed into place, so a crash
    never leaves a truncated NIfTI under the final name.

    Args:
        labels: uint8-compatible class indices shaped like ``case.image``.
        case: the case the labels were predicted for (its affine or spacing gives the geometry).
        path: the output file.
        overwrite: replace an existing file.

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        ValueError: ``path`` does not end in ``.nii.gz`` or ``.nii``, or ``labels`` do not fit ``case``.
    """
    path = Path(path)
    suffix = next((s for s in NIFTI_SUFFIXES if path.name.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{path}: a NIfTI output must end in .nii.gz or .nii")
    refuse_existing(path, overwrite)
    img = label_image(labels, case)
    with atomic_path(path, suffix=suffix) as tmp:  # nibabel picks the format from the suffix
        nib.save(img, tmp)
    return path
