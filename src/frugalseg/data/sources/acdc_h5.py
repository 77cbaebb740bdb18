"""The SSL4MIS / WSL4MIS ACDC HDF5 layout: the files the semi- and weakly-supervised ACDC literature reports on.

Layout (``root`` is the folder holding the lists)::

    root/
      train.list              training volumes' names, one a line (``patient099_frame01``)
      val.list                validation volumes' names
      train_slices.list       training slices' names (``patient099_frame01_slice_15``), in the order
                              the literature takes "the first k patients" from
      data/<case>_slice_<k>.h5   one 2D training slice: ``image`` float32 (H, W), ``label`` uint8 (H, W)
      data/<case>.h5             one whole volume (validation): ``image`` (D, H, W), ``label`` (D, H, W)

Slice numbers ``k`` count from 1 in the published files (``slice_1`` is the first slice of the
volume), so slice ``z`` (0-based) of a volume case has the item id ``<case>_slice_<z + 1>``; a case
whose slice files start at ``slice_0`` keeps that base. The files carry no voxel spacing, so every
case has ``spacing=None`` and metrics are in pixels.

Reading speed: h5py serialises every call under one global lock, so a thread pool does not help
(on 2 cores, 4 threads read the 1,312 ACDC training slices in 2.9 s against 2.1 s for a plain
loop), and neither did reading the chunks' bytes directly and inflating them in threads (finding
the chunks through h5py alone costs as much as decoding them). So the loop reads each file whole
with ``dataset[()]``; two thirds of its time (about 2.5 s in all) is gzip decompression in HDF5.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from frugalseg.data.sources.base import Source, as_class_indices, check_label, register_source
from frugalseg.data.types import Case, SliceItem
from frugalseg.errors import DataError

__all__ = ["AcdcH5Source", "ACDC_CLASSES", "read_h5_pair", "read_h5_scan"]

ACDC_CLASSES: dict[int, str] = {1: "RV", 2: "Myo", 3: "LV"}

TRAIN_LIST = "train.list"
VAL_LIST = "val.list"
SLICES_LIST = "train_slices.list"
_LISTS = (TRAIN_LIST, VAL_LIST, SLICES_LIST)

_SLICE_RE = re.compile(r"^(?P<case>.+)_slice_(?P<k>\d+)$")
_FRAME_RE = re.compile(r"_frame\d+$")


def read_h5_pair(path: Path, ndim: int, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``image`` and ``label`` from one SSL4MIS HDF5 file (:func:`read_h5_scan` with the label required)."""
    image, label = read_h5_scan(path, ndim, num_classes, label_required=True)
    assert label is not None  # required above
    return image, label


def read_h5_scan(path: Path, ndim: int, num_classes: int | None = None,
                 label_required: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``image`` and ``label`` from one SSL4MIS HDF5 file, checking everything a loader relies on.

    Every failure becomes a :class:`DataError` naming ``path``: a truncated or corrupt file makes
    HDF5 raise bare ``OSError``\\ s that do not say which of 1,312 files is broken.

    Args:
        path: the ``.h5`` file.
        ndim: 2 for a slice file, 3 for a volume file.
        num_classes: classes including background; a label value at or above it is an error.
        label_required: ``False`` reads a file without ``label`` as an unlabelled scan (label ``None``);
            ``predict`` needs no mask.

    Returns:
        ``image`` as float32 and ``label`` as uint8, both of the same shape.

    Raises:
        DataError: the file is missing, unreadable, lacks ``image`` or ``label``, has the wrong number of
            dimensions, non-finite intensities, non-integer or out-of-range labels, or mismatched shapes.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with h5py.File(path, "r") as f:
            datasets = {key: f.get(key) for key in ("image", "label")}
            missing = [key for key, ds in datasets.items() if not isinstance(ds, h5py.Dataset)]
            if not label_required and missing == ["label"] and "label" not in f:
                missing = []
            if missing:
                raise DataError(path, f"no dataset {' or '.join(repr(k) for k in missing)} (an SSL4MIS HDF5 file "
                                f"holds 'image' and 'label'; found {sorted(f.keys())})")
            image = datasets["image"][()]
            label = datasets["label"][()] if datasets["label"] is not None else None
    except DataError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise DataError(path, f"unreadable HDF5 file, truncated or corrupt? ({exc})") from exc
    if image.ndim != ndim:
        kind = "slice" if ndim == 2 else "volume"
        raise DataError(path, f"'image' has shape {image.shape}; a {kind} file holds a {ndim}D image")
    image = _as_float32(path, image)
    if label is not None:
        label = as_class_indices(path, label)
        check_label(path, image, label, num_classes)
    return image, label


def _as_float32(path: Path, image: np.ndarray) -> np.ndarray:
    """Intensities as float32; NaN or infinity would poison every loss silently, so they are errors."""
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise DataError(path, f"'image' has dtype {image.dtype}; expected a number type")
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise DataError(path, "'image' holds NaN or infinite values")
    return image


def _read_list(path: Path) -> list[str] | None:
    """Names in a ``.list`` file, blank lines skipped; ``None`` when the file does not exist."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable list file ({exc})") from exc
    names = [line.strip() for line in text.splitlines()]
    return [name.removesuffix(".h5") for name in names if name]


@register_source("acdc_h5")
class AcdcH5Source(Source):
    """Reads the SSL4MIS ACDC HDF5 layout (see the module docstring).

    Splits come from ``train.list`` and ``val.list``; ``"all"`` is both. Without ``train.list``
    the training cases are those named in ``train_slices.list``, in its order.

    Args:
        root: the folder holding ``data/`` and the ``.list`` files.

    Raises:
        DataError: ``root`` or ``root/data`` does not exist.
    """

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.data_dir = self.root / "data"
        if not self.data_dir.is_dir():
            raise DataError(self.data_dir, "missing: an SSL4MIS ACDC folder holds data/ with the .h5 files")

    @classmethod
    def detect(cls, root: Path) -> bool:
        """A ``data/`` folder beside at least one of ``train.list``, ``val.list``, ``train_slices.list``."""
        return (root / "data").is_dir() and any((root / name).is_file() for name in _LISTS)

    @property
    def classes(self) -> dict[int, str]:
        """ACDC's three foreground structures: right ventricle, myocardium, left ventricle."""
        return dict(ACDC_CLASSES)

    # ----------------------------------------------------------------------------------- lists

    @cached_property
    def _train_list(self) -> list[str] | None:
        return _read_list(self.root / TRAIN_LIST)

    @cached_property
    def _val_list(self) -> list[str] | None:
        return _read_list(self.root / VAL_LIST)

    @cached_property
    def _slice_list(self) -> list[tuple[str, str]] | None:
        """``train_slices.list`` as (slice name, case id) pairs, in the file's order."""
        names = _read_list(self.root / SLICES_LIST)
        if names is None:
            return None
        pairs = []
        for name in names:
            match = _SLICE_RE.match(name)
            if match is None:
                raise DataError(self.root / SLICES_LIST, f"{name!r} is not a slice name '<case>_slice_<k>'")
            pairs.append((name, match["case"]))
        return pairs

    @cached_property
    def _slice_files(self) -> dict[str, dict[int, Path]]:
        """Slice files on disk by case and slice number: one directory listing, not one glob per case."""
        index: dict[str, dict[int, Path]] = {}
        for path in self.data_dir.iterdir():
            if path.suffix != ".h5":
                continue
            match = _SLICE_RE.match(path.stem)
            if match is not None:
                index.setdefault(match["case"], {})[int(match["k"])] = path
        return index

    def case_ids(self, split: str = "train") -> list[str]:
        """Case ids of ``split`` (``"train"``, ``"val"`` or ``"all"``) in the lists' own order."""
        if split == "train":
            if self._train_list is not None:
                return list(self._train_list)
            return list(dict.fromkeys(case for _, case in self._slice_list or []))
        if split == "val":
            return list(self._val_list or [])
        if split == "all":
            return list(dict.fromkeys(self.case_ids("train") + self.case_ids("val")))
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'all'")

    def patient_of(self, case_id: str) -> str:
        """``patient028_frame01`` belongs to ``patient028``: both frames of a patient share a budget."""
        return _FRAME_RE.sub("", case_id)

    def _slice_base(self, case_id: str) -> int:
        """Number of the first slice file of a case (1 in the published files, which count from 1)."""
        files = self._slice_files.get(case_id)
        return min(files) if files else 1

    def slice_id(self, case_id: str, index: int) -> str:
        """``<case>_slice_<k>``, the id the slice files themselves carry, also for slices of a volume file."""
        return f"{case_id}_slice_{index + self._slice_base(case_id)}"

    # ----------------------------------------------------------------------------------- reading

    def load_case(self, case_id: str) -> Case:
        """Read ``data/<case>.h5``, or else stack the case's slice files in slice order.

        Raises:
            DataError: neither a volume file nor slice files exist, a slice number is missing in the
                run of slice files, the slices differ in shape, or a file is unreadable.
        """
        volume_path = self.data_dir / f"{case_id}.h5"
        if volume_path.is_file():
            image, label = read_h5_pair(volume_path, 3, self.num_classes)
            return Case(case_id, self.patient_of(case_id), image, label)
        files = self._slice_files.get(case_id)
        if not files:
            raise DataError(volume_path, f"case {case_id!r} has neither this volume file nor slice files "
                            f"{case_id}_slice_<k>.h5 in {self.data_dir}")
        numbers = sorted(files)
        expected = list(range(numbers[0], numbers[0] + len(numbers)))
        if numbers != expected:
            gap = min(set(expected) - set(numbers))
            raise DataError(self.data_dir / f"{case_id}_slice_{gap}.h5",
                            f"missing: case {case_id!r} has slices {numbers[0]}..{numbers[-1]} but not this one")
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for k in numbers:
            image, label = read_h5_pair(files[k], 2, self.num_classes)
            if images and image.shape != images[0].shape:
                raise DataError(files[k], f"slice shape {image.shape} differs from the case's first slice "
                                f"{images[0].shape}")
            images.append(image)
            labels.append(label)
        return Case(case_id, self.patient_of(case_id), np.stack(images), np.stack(labels))

    def training_slices(self, case_ids: Sequence[str] | None = None) -> list[SliceItem]:
        """The 2D training items, read straight from the slice files in ``train_slices.list`` order.

        The order matters: SSL4MIS-style budgets take "the first k patients" as the first N lines
        of ``train_slices.list`` (patient099, 038, 050, 100, ...), not in sorted order.

        Args:
            case_ids: restrict to these cases (default: every slice of ``train_slices.list``). Their
                listed slices come first, in the list's order; a case not in the list (a validation
                volume, or any case when the list is absent) follows, split from its volume or
                stacked slice files, in the order given.

        Raises:
            DataError: a listed slice file is missing or unreadable (the error names the file).
        """
        listed = self._slice_list
        wanted = None if case_ids is None else list(dict.fromkeys(case_ids))
        if listed is None:
            listed = []
            if wanted is None:
                wanted = self.case_ids("train")
        keep = None if wanted is None else set(wanted)
        items: list[SliceItem] = []
        covered: set[str] = set()
        for name, case_id in listed:
            if keep is not None and case_id not in keep:
                continue
            covered.add(case_id)
            path = self.data_dir / f"{name}.h5"
            if not path.is_file():
                raise DataError(path, f"missing, but {self.root / SLICES_LIST} lists {name!r}")
            image, label = read_h5_pair(path, 2, self.num_classes)
            items.append(SliceItem(name, case_id, self.patient_of(case_id), image, label))
        for case_id in wanted or []:
            if case_id not in covered:
                items.extend(self.slices_of(self.load_case(case_id)))
        return items
