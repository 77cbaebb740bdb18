"""Plain containers passed between the data layer and the rest of frugalseg.

They hold numpy arrays, not tensors: sources read files, the dataset turns
items into tensors. Keeping them dumb makes every source trivially testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """One stored case: a volume (D, H, W) or a single 2D image (H, W).

    Attributes:
        case_id: stable id of the case (``patient028_frame01``, ``la_003``, ``img_0001``).
        patient_id: the patient the case belongs to; budgets assign annotations per patient.
        image: float32 intensities, normalised by the source (ACDC: min-max per volume).
        label: uint8 class indices of the same shape, or ``None`` when the source has no mask.
        spacing: physical size of a voxel along each axis of ``image`` in mm, or ``None`` when the
            format carries none (the SSL4MIS HDF5 files); metrics are then in pixels.
        affine: 4x4 voxel-to-world matrix for NIfTI inputs (so predictions can carry it), else ``None``.
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...] | None = None
    affine: np.ndarray | None = None

    @property
    def is_volume(self) -> bool:
        return self.image.ndim == 3


@dataclass
class SliceItem:
    """One 2D training item: a stored slice or one slice of a volume.

    Attributes:
        item_id: the id annotation files use (``patient001_frame01_slice_3``, ``<case>_z<k>``, PNG stem).
        case_id: the case the slice comes from.
        patient_id: the patient the case belongs to.
        image: float32 (H, W).
        label: uint8 (H, W) or ``None``.
        spacing: in-plane (row, column) spacing in mm, or ``None``.
    """

    item_id: str
    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))
