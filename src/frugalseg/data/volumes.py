"""Slices grouped back into their volumes, in slice order.

Training items are 2D slices, but two questions are about volumes: which slices of a volume a
sparse budget annotates, and whether two suggested slices are neighbours. An item knows its volume
(``SliceItem.case_id``); its place in the volume is the slice number its id ends with:
``<case>_slice_<k>`` (the SSL4MIS files, where ``train_slices.list`` lists a volume's slices in
shuffled order) or ``<case>_z<k>`` (volumes split by frugalseg). An item whose id carries no
number (a 2D image is its own case) keeps its order of appearance within its case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from frugalseg.data.types import SliceItem

__all__ = ["are_adjacent", "slice_number", "volume_slices"]

_NUMBER = re.compile(r"_(?:slice_|z)(\d+)$")


def slice_number(item_id: str, case_id: str) -> int | None:
    """The slice number in ``item_id`` (``patient001_frame01_slice_3`` → 3), or ``None`` if it has none."""
    if item_id == case_id or not item_id.startswith(case_id):
        return None
    match = _NUMBER.fullmatch(item_id[len(case_id):])
    return int(match.group(1)) if match else None


def volume_slices(items: Sequence[SliceItem]) -> dict[str, list[SliceItem]]:
    """Items by volume (case id, in order of first appearance), each volume's items in slice order."""
    groups: dict[str, list[tuple[int, int, SliceItem]]] = {}
    for k, item in enumerate(items):
        number = slice_number(item.item_id, item.case_id)
        groups.setdefault(item.case_id, []).append((k if number is None else number, k, item))
    return {case: [it for _, _, it in sorted(group, key=lambda t: (t[0], t[1]))] for case, group in groups.items()}


def are_adjacent(a: SliceItem, b: SliceItem) -> bool:
    """Two slices of one volume whose slice numbers differ by one (items without numbers are never adjacent)."""
    if a.case_id != b.case_id:
        return False
    na, nb = slice_number(a.item_id, a.case_id), slice_number(b.item_id, b.case_id)
    return na is not None and nb is not None and abs(na - nb) == 1
