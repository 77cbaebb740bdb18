"""The interface every file-format source implements, and the registry that finds them by name.

A source reads one on-disk layout and yields :class:`~frugalseg.data.types.Case`
and :class:`~frugalseg.data.types.SliceItem` objects. Adding a format is one
file: subclass :class:`Source`, decorate it with :func:`register_source`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from frugalseg.data.types import Case, SliceItem
from frugalseg.errors import DataError

SOURCES: dict[str, type[Source]] = {}


def register_source(name: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: make a :class:`Source` findable by ``name`` (``data.format`` in a config)."""

    def decorate(cls: type[Source]) -> type[Source]:
        if name in SOURCES:
            raise ValueError(f"source {name!r} registered twice")
        cls.name = name
        SOURCES[name] = cls
        return cls

    return decorate


class Source(ABC):
    """A data set on disk in one layout.

    Splits: ``"train"`` and ``"val"`` are the layout's own split where it has one
    (ACDC's ``train.list`` / ``val.list``); a layout without one puts every case in
    ``"train"`` and none in ``"val"`` (give a ``--list`` / ``data.val_list`` instead).

    Args:
        root: the folder holding the layout.
    """

    name: ClassVar[str] = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "data folder does not exist")

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` looks like this layout (used to recognise ``--data DIR``)."""

    @property
    @abstractmethod
    def classes(self) -> dict[int, str]:
        """Foreground class names by index (background 0 is implicit), e.g. ``{1: "RV", 2: "Myo", 3: "LV"}``."""

    @property
    def in_channels(self) -> int:
        """Channels of every image (the networks' input channels); every layout read so far has one."""
        return 1

    @property
    def num_classes(self) -> int:
        """Number of output classes including background."""
        return max(self.classes, default=0) + 1

    @abstractmethod
    def case_ids(self, split: str = "train") -> list[str]:
        """Ids of the cases in ``split`` (``"train"``, ``"val"`` or ``"all"``), in the layout's own order."""

    @abstractmethod
    def load_case(self, case_id: str) -> Case:
        """Read one whole case (a volume or a 2D image)."""

    def patient_of(self, case_id: str) -> str:
        """The patient a case belongs to (default: the case itself)."""
        return case_id

    def slice_id(self, case_id: str, index: int) -> str:
        """Stable item id of slice ``index`` of a volume case (``<case>_z<k>`` unless the layout has its own)."""
        return f"{case_id}_z{index}"

    def training_slices(self, case_ids: Sequence[str] | None = None) -> list[SliceItem]:
        """All 2D items of the given cases (default: the ``"train"`` split), in a stable order.

        Volumes are split along their first axis; 2D cases give one item each.
        """
        ids = self.case_ids("train") if case_ids is None else list(case_ids)
        items: list[SliceItem] = []
        for case_id in ids:
            items.extend(self.slices_of(self.load_case(case_id)))
        return items

    def slices_of(self, case: Case) -> Iterator[SliceItem]:
        """Split a case into 2D items with stable ids."""
        spacing2d = None if case.spacing is None else (float(case.spacing[-2]), float(case.spacing[-1]))
        if not case.is_volume:
            yield SliceItem(case.case_id, case.case_id, case.patient_id, case.image, case.label, spacing2d)
            return
        for z in range(case.image.shape[0]):
            label = None if case.label is None else case.label[z]
            yield SliceItem(self.slice_id(case.case_id, z), case.case_id, case.patient_id, case.image[z], label,
                            spacing2d)


def check_label(path: Path, image: np.ndarray, label: np.ndarray | None, num_classes: int | None = None) -> None:
    """Raise :class:`DataError` naming ``path`` when ``label`` does not fit ``image``."""
    if label is None:
        return
    if label.shape != image.shape:
        raise DataError(path, f"label shape {tuple(label.shape)} differs from image shape {tuple(image.shape)}")
    if num_classes is not None and label.size and int(label.max()) >= num_classes:
        raise DataError(path, f"label holds class {int(label.max())} but the data set has {num_classes} classes")
    if label.size and int(label.min()) < 0:
        raise DataError(path, f"label holds negative class {int(label.min())}")


def as_class_indices(path: Path, label: np.ndarray) -> np.ndarray:
    """Class indices as uint8 (labels are often stored as float or int16); a float label is accepted only when
    every value is a whole number. Shared by every source so that all formats reject the same bad labels."""
    if label.dtype == np.uint8:
        return label
    if not (np.issubdtype(label.dtype, np.floating) or np.issubdtype(label.dtype, np.integer)):
        raise DataError(path, f"label has dtype {label.dtype}; expected class indices")
    if label.size:
        if np.issubdtype(label.dtype, np.floating) and not np.array_equal(label, np.round(label)):
            raise DataError(path, "label holds non-integer values; expected class indices")
        low, high = float(label.min()), float(label.max())
        if low < 0 or high > 255:
            raise DataError(path, f"label values span [{low:g}, {high:g}]; expected class indices 0..255")
    return label.astype(np.uint8)
