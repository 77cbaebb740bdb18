"""Volume items in training: an annotation keyed by a case id, with ``z``, becomes annotations of its slices.

The annotation format allows a *volume item* (``docs/annotation-format.md``): the case id as item id,
each click and box on slice ``z``, each scribble pixel ``[z, y, x]``. Training draws 2D slices, so
before training each volume item is split into the items of its slices (the ids the source gives,
``source.slice_id(case, z)``) and merged with anything those slices carry themselves. The merged file
is checked again, so a volume click that contradicts a slice's own click is refused like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from frugalseg.data.annotations import AnnotationFile, Box, Item, Point, Scribble, check_annotations
from frugalseg.data.sources import Source
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError

__all__ = ["slices_by_case", "training_grids", "split_volume_items"]


def slices_by_case(source: Source, items: list[SliceItem]) -> dict[str, list[str]]:
    """Case id -> its slice item ids in ``z`` order, for every case whose slices are all training items.

    A case whose id is itself an item id (a 2D case, as in a PNG folder) has no volume item.
    """
    item_ids = {it.item_id for it in items}
    counts: dict[str, int] = {}
    for it in items:
        counts[it.case_id] = counts.get(it.case_id, 0) + 1
    out = {}
    for case, depth in counts.items():
        if case in item_ids:
            continue
        ids = [source.slice_id(case, z) for z in range(depth)]
        if all(i in item_ids for i in ids):
            out[case] = ids
    return out


def training_grids(items: list[SliceItem], volumes: Mapping[str, list[str]]) -> dict[str, tuple[int, ...]]:
    """Item id -> (H, W) for every slice, and case id -> (D, H, W) for every case that can take a volume item."""
    grids: dict[str, tuple[int, ...]] = {it.item_id: it.shape for it in items}
    for case, ids in volumes.items():
        shapes = {grids[i] for i in ids}
        if len(shapes) == 1:
            grids[case] = (len(ids), *shapes.pop())
    return grids


def split_volume_items(ann: AnnotationFile, volumes: Mapping[str, list[str]], grids: Mapping[str, tuple[int, ...]],
                       path: str | Path) -> AnnotationFile:
    """``ann`` with every volume item replaced by annotations of its slices (merged with theirs), re-checked."""
    if not any(item_id in volumes for item_id in ann.items):
        return ann
    items: dict[str, Item] = {k: v for k, v in ann.items.items() if k not in volumes}
    for case in sorted(k for k in ann.items if k in volumes):
        for slice_id, part in _split(ann.items[case], volumes[case], case, path).items():
            items[slice_id] = _merge(items[slice_id], part) if slice_id in items else part
    out = ann.model_copy(update={"items": items})
    check_annotations(out, {k: v for k, v in grids.items() if k not in volumes}, path)
    return out


def _split(item: Item, slice_ids: list[str], case: str, path: str | Path) -> dict[str, Item]:
    """One volume item as items of its slices (``z`` dropped; ``mask: true`` marks every slice)."""
    if item.tags is not None:
        raise AnnotationError(path, "tags on a volume item say nothing about a single slice; give tags per "
                              "slice item for training", item=case, field="tags")
    parts: dict[int, dict[str, list]] = {}

    def slot(z: int) -> dict[str, list]:
        return parts.setdefault(z, {"points": [], "scribbles": [], "boxes": []})

    for p in item.points:
        assert p.z is not None  # checked against the volume's grid on load
        slot(p.z)["points"].append(Point.model_validate({"class": p.class_, "y": p.y, "x": p.x}))
    for b in item.boxes:
        assert b.z is not None
        slot(b.z)["boxes"].append(Box.model_validate({"class": b.class_, "y0": b.y0, "x0": b.x0, "y1": b.y1,
                                                      "x1": b.x1}))
    for s in item.scribbles:
        by_z: dict[int, list[list[int]]] = {}
        for z, y, x in s.path:
            by_z.setdefault(z, []).append([y, x])
        for z, pixels in by_z.items():
            slot(z)["scribbles"].append(Scribble.model_validate({"class": s.class_, "path": pixels}))
    zs = range(len(slice_ids)) if item.mask else sorted(parts)
    return {slice_ids[z]: Item.model_validate({**parts.get(z, {}), "mask": item.mask}) for z in zs}


def _merge(a: Item, b: Item) -> Item:
    return Item(points=[*a.points, *b.points], scribbles=[*a.scribbles, *b.scribbles], boxes=[*a.boxes, *b.boxes],
                tags=a.tags, mask=a.mask or b.mask)
