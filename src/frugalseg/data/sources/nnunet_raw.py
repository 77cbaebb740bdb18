"""The nnU-Net v2 raw layout, and the Medical Segmentation Decathlon layout it grew from (NIfTI files).

Layout (nnU-Net v2)::

    root/
      dataset.json            {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "LV": 1, ...},
                               "file_ending": ".nii.gz", "numTraining": N}
      imagesTr/<case>_0000.nii.gz
      labelsTr/<case>.nii.gz  (optional per case: a case without one is unlabelled)
      imagesTs/<case>_0000.nii.gz   (optional)

The Decathlon's own layout (``imagesTr/<case>.nii.gz`` without the channel suffix, ``"modality"`` for
``"channel_names"`` and ``"labels": {"0": "background", "1": "left atrium"}``) is read as well.
Only single-channel data are supported: frugalseg's networks read one channel.

Axes. nibabel gives a NIfTI's voxels as (i, j, k), the file's first, second and third axes. A case
stores them reversed, as (D, H, W) = (k, j, i), the order SimpleITK (and so nnU-Net) uses: the slice
axis D is the NIfTI's **third** axis, along which scanners usually acquire (and which is the thick
axis of anisotropic MR). Voxels are not resampled or reoriented to RAS; ``Case.spacing`` is
(dk, dj, di) in mm from the header and ``Case.affine`` is the file's own affine, which indexes
voxels in file order (i, j, k). :func:`to_nifti` undoes the transpose to write a prediction in the
input's geometry.

Intensities are normalised per case, like the ACDC files: CT (a channel named ``"CT"``) is clipped
to the case's 0.5th and 99.5th percentiles first, so that air, metal and the scanner's padding value
(-1024, -2048) do not squash the soft-tissue range into a few grey levels; every other modality is
min-max scaled to [0, 1] as it is. A constant image becomes all zeros.
"""

from __future__ import annotations

import json
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from frugalseg.data.sources.base import Source, as_class_indices, check_label, register_source
from frugalseg.data.types import Case
from frugalseg.errors import DataError

__all__ = ["NnunetRawSource", "normalise_intensities", "to_nifti"]

Intensity = Literal["auto", "minmax", "percentile"]
NIFTI_ENDINGS = (".nii.gz", ".nii")
CT_PERCENTILES = (0.5, 99.5)


def normalise_intensities(image: np.ndarray, mode: Literal["minmax", "percentile"]) -> np.ndarray:
    """Scale one case's intensities to [0, 1] (float32).

    Args:
        image: the raw intensities.
        mode: ``"minmax"`` maps the minimum to 0 and the maximum to 1; ``"percentile"`` first clips to
            the 0.5th and 99.5th percentiles (nnU-Net's CT clipping, here per case), so that outliers
            do not decide the scale.

    Returns:
        float32 array of the same shape in [0, 1]; all zeros when the image is constant.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.size == 0:
        return image
    if mode == "percentile":
        low, high = np.percentile(image, CT_PERCENTILES)
        image = np.clip(image, low, high).astype(np.float32)  # the percentiles are float64
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image)
    return ((image - low) / (high - low)).astype(np.float32)


def to_nifti(array: np.ndarray, affine: np.ndarray | None) -> nib.Nifti1Image:
    """A NIfTI image of a (D, H, W) array in the geometry of the case it came from.

    Undoes the source's transpose, so that a prediction written with the case's ``affine`` overlays
    the input scan in any viewer.

    Args:
        array: (D, H, W) as stored on a :class:`Case` (or (H, W) for a one-slice case).
        affine: ``Case.affine`` (``None`` gives the identity).
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    return nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), np.eye(4) if affine is None else affine)


def _read_nifti(path: Path, *, integer: bool) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Read a NIfTI file as (D, H, W), with its affine and (D, H, W) spacing.

    Args:
        path: the file.
        integer: read class indices (raw stored values, checked to be whole numbers) rather than
            intensities (scaled floats).

    Raises:
        DataError: the file cannot be read, or holds more than one channel or time point.
    """
    try:
        img = cast(SpatialImage, nib.load(path))  # a NIfTI file loads as a spatial image (a voxel grid)
        data = np.asanyarray(img.dataobj) if integer else img.get_fdata(dtype=np.float32)
        affine = np.asarray(img.affine, dtype=np.float64)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except (OSError, EOFError, ValueError, TypeError, zlib.error, nib.filebasedimages.ImageFileError) as exc:
        raise DataError(path, f"unreadable NIfTI file ({exc})") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise DataError(path, f"shape {data.shape} holds {data.shape[3]} channels or time points; frugalseg reads "
                        "single-channel 3D or 2D images")
    if data.ndim < 2:
        raise DataError(path, f"shape {data.shape} is not an image")
    if data.ndim == 2:
        data = data[:, :, None]
    zooms = (zooms + (1.0, 1.0, 1.0))[:3]
    return np.ascontiguousarray(data.transpose(2, 1, 0)), affine, (zooms[2], zooms[1], zooms[0])


@register_source("nnunet_raw")
class NnunetRawSource(Source):
    """Reads an nnU-Net v2 raw folder or a Medical Segmentation Decathlon task folder.

    Splits: the layout has no validation split of its own, so every ``imagesTr`` case is in
    ``"train"`` and ``"val"`` is empty (give a ``--list`` instead); ``imagesTs`` cases form
    ``"test"``; ``"all"`` is both.

    Args:
        root: the dataset folder (``Dataset027_ACDC``, ``Task02_Heart``).
        intensity: ``"auto"`` (percentile clipping for CT, min-max otherwise), ``"minmax"`` or
            ``"percentile"``; see :func:`normalise_intensities`.

    Raises:
        DataError: ``dataset.json`` is missing or malformed, names more than one channel, a file
            ending other than NIfTI, or region-based labels.
    """

    def __init__(self, root: str | Path, intensity: Intensity = "auto") -> None:
        super().__init__(root)
        if intensity not in ("auto", "minmax", "percentile"):
            raise ValueError(f"unknown intensity normalisation {intensity!r}; expected auto, minmax or percentile")
        self.meta_path = self.root / "dataset.json"
        meta = self._read_meta()
        self._classes, self._modality, self.file_ending = self._parse_meta(meta)
        self.intensity: Literal["minmax", "percentile"]
        if intensity == "auto":
            self.intensity = "percentile" if self._modality.strip().upper() == "CT" else "minmax"
        else:
            self.intensity = intensity

    @classmethod
    def detect(cls, root: Path) -> bool:
        """A ``dataset.json`` beside an ``imagesTr/`` folder."""
        return (root / "dataset.json").is_file() and (root / "imagesTr").is_dir()

    @property
    def classes(self) -> dict[int, str]:
        """Foreground classes from ``dataset.json``'s ``labels``."""
        return dict(self._classes)

    def _read_meta(self) -> dict[str, Any]:
        if not self.meta_path.is_file():
            raise DataError(self.meta_path, "missing: an nnU-Net raw folder holds dataset.json (labels, "
                            "channel_names, file_ending)")
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(self.meta_path, f"unreadable JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise DataError(self.meta_path, "expected a JSON object")
        return meta

    def _parse_meta(self, meta: dict[str, Any]) -> tuple[dict[int, str], str, str]:
        """Classes, the single channel's modality name and the file ending, from either dialect."""
        path = self.meta_path
        labels = meta.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise DataError(path, "'labels' must map class names to indices ({\"background\": 0, \"LV\": 1})")
        classes: dict[int, str] = {}
        msd = all(isinstance(v, str) for v in labels.values())  # Decathlon: {"0": "background", "1": "..."}
        for key, value in labels.items():
            index, name = (key, value) if msd else (value, key)
            if isinstance(index, list):
                raise DataError(path, f"label {name!r} is a region {index}; frugalseg needs one index per class")
            try:
                index = int(index)
            except (TypeError, ValueError):
                raise DataError(path, f"label {name!r} has index {index!r}; expected an integer") from None
            if index < 0 or index > 255:
                raise DataError(path, f"label {name!r} has index {index}; expected 0..255")
            if index > 0:
                classes[index] = str(name)
        channels = meta.get("channel_names", meta.get("modality", {"0": ""}))
        if not isinstance(channels, dict) or not channels:
            raise DataError(path, "'channel_names' must map channel numbers to names ({\"0\": \"MRI\"})")
        if len(channels) != 1:
            raise DataError(path, f"{len(channels)} channels {dict(channels)}; frugalseg reads single-channel "
                            "images only (keep one modality)")
        ending = meta.get("file_ending", ".nii.gz")
        if ending not in NIFTI_ENDINGS:
            raise DataError(path, f"file_ending {ending!r} is not supported; only NIfTI ({', '.join(NIFTI_ENDINGS)})")
        return dict(sorted(classes.items())), str(next(iter(channels.values()))), ending

    # ----------------------------------------------------------------------------------- cases

    def _scan(self, folder: str) -> dict[str, Path]:
        """Cases of ``imagesTr`` / ``imagesTs`` with their image file, sorted by id.

        Reads ``<case>_0000<ending>`` (nnU-Net v2), or ``<case><ending>`` when no file carries the
        channel suffix (the Decathlon). A ``_0001`` file means a second channel: an error.
        """
        directory = self.root / folder
        if not directory.is_dir():
            return {}
        names = sorted(p.name for p in directory.iterdir() if p.name.endswith(self.file_ending)
                       and not p.name.startswith("."))  # "._la_003.nii.gz": macOS tar residue in the MSD archives
        stems = [name[: -len(self.file_ending)] for name in names]
        if not any(stem.endswith("_0000") for stem in stems):
            return {stem: directory / name for stem, name in zip(stems, names)}
        cases: dict[str, Path] = {}
        for stem, name in zip(stems, names):
            case, _, channel = stem.rpartition("_")
            if channel != "0000":
                raise DataError(directory / name, "a second channel (or a file without the _0000 suffix); "
                                "frugalseg reads single-channel nnU-Net data: files <case>_0000" + self.file_ending)
            cases[case] = directory / name
        return cases

    @cached_property
    def _train_cases(self) -> dict[str, Path]:
        return self._scan("imagesTr")

    @cached_property
    def _test_cases(self) -> dict[str, Path]:
        return self._scan("imagesTs")

    def case_ids(self, split: str = "train") -> list[str]:
        """``imagesTr`` cases for ``"train"`` (none for ``"val"``), ``imagesTs`` for ``"test"``; ``"all"``: both."""
        if split == "train":
            return list(self._train_cases)
        if split == "val":
            return []
        if split == "test":
            return list(self._test_cases)
        if split == "all":
            return list(dict.fromkeys(list(self._train_cases) + list(self._test_cases)))
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val', 'test' or 'all'")

    def image_path(self, case_id: str) -> Path:
        """The image file of a case (``imagesTr`` first, then ``imagesTs``)."""
        path = self._train_cases.get(case_id) or self._test_cases.get(case_id)
        if path is None:
            raise DataError(self.root / "imagesTr" / f"{case_id}_0000{self.file_ending}", "no such case")
        return path

    def label_path(self, case_id: str) -> Path:
        """Where the case's label file is (``labelsTr``, or ``labelsTs`` for a test case); it may not exist."""
        folder = "labelsTr" if case_id in self._train_cases else "labelsTs"
        return self.root / folder / f"{case_id}{self.file_ending}"

    def load_case(self, case_id: str) -> Case:
        """Read a case as (D, H, W) with spacing and affine; the label is ``None`` where there is no file.

        Raises:
            DataError: a file is unreadable, multi-channel, or the label's shape or geometry differs
                from the image's (the error names the label file).
        """
        image_path = self.image_path(case_id)
        raw, affine, spacing = _read_nifti(image_path, integer=False)
        if not np.isfinite(raw).all():
            raise DataError(image_path, "image holds NaN or infinite values")
        image = normalise_intensities(raw, self.intensity)
        label = None
        label_path = self.label_path(case_id)
        if label_path.is_file():
            raw_label, label_affine, _ = _read_nifti(label_path, integer=True)
            check_label(label_path, image, raw_label)
            label = as_class_indices(label_path, raw_label)
            check_label(label_path, image, label, self.num_classes)
            if not np.allclose(label_affine, affine, rtol=1e-4, atol=1e-3):
                raise DataError(label_path, f"geometry (affine) differs from the image's {image_path.name}:\n"
                                f"{label_affine}\nagainst\n{affine}")
        return Case(case_id, self.patient_of(case_id), image, label, spacing=spacing, affine=affine)
