"""What the page may show: the training items of one data set, by item id, grouped by volume.

The page annotates exactly the 2D items ``frugalseg train`` trains on (a data folder's training
split, each volume split into slices with the source's own item ids), so every item the page writes
is an item the trainer knows, and the file trains as is. Images are reached only through an item id
looked up here: no request ever names a path.

A data folder is read through the project's sources (SSL4MIS HDF5, nnU-Net raw NIfTI, PNG folder);
a single image file (``scan.nii.gz``) is read as one case with :func:`read_single_case`, its slices
named ``<case>_z<k>`` as a folder source would name them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from frugalseg.data.sources import open_source
from frugalseg.data.sources.base import Source
from frugalseg.data.sources.single_file import read_single_case
from frugalseg.data.types import SliceItem
from frugalseg.errors import DataError

__all__ = ["Catalog", "ItemInfo", "load_catalog", "read_classes_file"]


@dataclass(frozen=True)
class ItemInfo:
    """Where an item sits: its volume (case), its index in that volume, and its grid (H, W)."""

    item_id: str
    case_id: str
    index: int
    height: int
    width: int


class Catalog:
    """The items of a data set in page order (volume by volume), with their images.

    Args:
        items: the 2D items, in the order the source gives them.
        classes: foreground class names by id.
        data: the data folder or file, for messages and provenance.
    """

    def __init__(self, items: list[SliceItem], classes: Mapping[int, str], data: Path) -> None:
        if not items:
            raise DataError(data, "no training items to annotate")
        self.data = data
        self.classes = dict(sorted(classes.items()))
        cases: dict[str, list[SliceItem]] = {}
        for it in items:
            cases.setdefault(it.case_id, []).append(it)
        self._images: dict[str, np.ndarray] = {}
        self.infos: list[ItemInfo] = []
        for case_id, members in cases.items():
            for index, it in enumerate(_in_slice_order(members)):
                if it.item_id in self._images:
                    raise DataError(data, f"item id {it.item_id!r} appears twice")
                self._images[it.item_id] = np.ascontiguousarray(it.image, dtype="<f4")
                self.infos.append(ItemInfo(it.item_id, case_id, index, *it.shape))
        self._by_id = {info.item_id: info for info in self.infos}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def info(self, item_id: str) -> ItemInfo:
        """The item's place and grid; :class:`KeyError` for an unknown id."""
        return self._by_id[item_id]

    def grid(self, item_id: str) -> tuple[int, int]:
        info = self._by_id[item_id]
        return (info.height, info.width)

    def grids(self) -> dict[str, tuple[int, ...]]:
        """Item id → (H, W), the form :func:`~frugalseg.data.annotations.load_annotations` checks against."""
        return {info.item_id: (info.height, info.width) for info in self.infos}

    def image_bytes(self, item_id: str) -> bytes:
        """The item's intensities as little-endian float32, row by row (the page applies window/level)."""
        return self._images[item_id].tobytes()

    def class_names(self) -> dict[str, str]:
        """Classes as the annotation file writes them: ``{"1": "RV", ...}``."""
        return {str(k): v for k, v in self.classes.items()}


def _in_slice_order(members: list[SliceItem]) -> list[SliceItem]:
    """A volume's slices by the number their ids end with (``_slice_3``, ``_z12``), where all have one.

    Sources list training slices in their own order (ACDC's ``train_slices.list`` is shuffled within
    a volume); paging through a volume needs neighbouring slices next to each other.
    """
    numbers = [re.search(r"(\d+)$", it.item_id) for it in members]
    if any(n is None for n in numbers):
        return members
    return [it for _, it in sorted(zip([int(n.group(1)) for n in numbers if n], members), key=lambda p: p[0])]


def read_classes_file(path: Path) -> dict[int, str]:
    """``--classes FILE``: a JSON or YAML mapping of positive class ids to names, ``{1: LV, 2: Myo}``.

    Raises:
        DataError: naming the file, when it is missing, unreadable or not such a mapping.
    """
    if not path.is_file():
        raise DataError(path, "classes file does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(path, f"unreadable classes file ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError(path, 'expected a mapping of class ids to names, e.g. {"1": "LV", "2": "Myo"}')
    classes: dict[int, str] = {}
    for key, name in raw.items():
        text = str(key)
        if not (text.isascii() and text.isdigit()) or int(text) < 1 or text != str(int(text)):
            raise DataError(path, f"key {key!r}: class ids are positive integers (0, background, is implicit)")
        if not isinstance(name, str) or not name.strip():
            raise DataError(path, f"class {key}: the name must be a non-empty string, got {json.dumps(name)}")
        classes[int(text)] = name.strip()
    if len(classes) > 9:
        raise DataError(path, f"{len(classes)} classes; the page has keys for 9 (1-9)")
    return dict(sorted(classes.items()))


def _resolve_classes(data: Path, from_data: dict[int, str], classes_file: Path | None) -> dict[int, str]:
    """The data's classes, or ``--classes`` where the data names none; both must agree when both are given."""
    if classes_file is None:
        if not from_data:
            raise DataError(data, "the data names no classes (no masks): pass --classes FILE, a JSON or YAML "
                            'mapping such as {"1": "LV", "2": "Myo"}')
        return from_data
    given = read_classes_file(classes_file)
    if from_data and given != from_data:
        raise DataError(classes_file, f"classes {given} differ from the data's {from_data}; training uses the "
                        "data's classes, so leave --classes out")
    return given


def _single_file_items(path: Path) -> list[SliceItem]:
    case = read_single_case(path)
    if not case.is_volume:
        return [SliceItem(case.case_id, case.case_id, case.patient_id, case.image, case.label)]
    return [SliceItem(f"{case.case_id}_z{z}", case.case_id, case.patient_id, case.image[z], None)
            for z in range(case.image.shape[0])]


def load_catalog(data: str | Path, classes_file: str | Path | None = None) -> Catalog:
    """Open ``data`` (a data folder of any supported layout, or one image file) for the page.

    Raises:
        DataError: the data cannot be read, has no training items, or no classes and no ``--classes``.
    """
    data = Path(data)
    classes_path = None if classes_file is None else Path(classes_file)
    if data.is_file():
        items = _single_file_items(data)
        found: dict[int, str] = {}
    else:
        source: Source = open_source(data)
        items = source.training_slices(source.case_ids("train"))
        found = source.classes
    return Catalog(items, _resolve_classes(data, found, classes_path), data)
