"""What has been annotated so far: a line per item and counts per class and kind, for the page's progress list."""

from __future__ import annotations

from typing import Any

from frugalseg.annotate.catalog import Catalog
from frugalseg.data.annotations import AnnotationFile, Item

__all__ = ["KINDS", "item_summary", "progress"]

KINDS = ("points", "scribbles", "boxes", "tags")


def item_summary(item: Item | None) -> dict[str, Any]:
    """Counts of one item's annotations by kind, its tags, and whether it was marked as holding nothing."""
    item = item or Item()
    return {
        "points": len(item.points),
        "scribbles": len(item.scribbles),
        "boxes": len(item.boxes),
        "tags": item.tags,
        "empty": item.tags == [],
        "annotated": not item.is_empty,
    }


def progress(catalog: Catalog, ann: AnnotationFile) -> dict[str, Any]:
    """Per item (in page order) its summary; per class the points, scribbles, boxes and 'present' tags.

    Class counts include background (``"0"``), which points and scribbles may carry.
    """
    per_class = {c: dict.fromkeys(KINDS, 0) for c in ["0", *ann.classes]}
    items = []
    for info in catalog.infos:
        item = ann.items.get(info.item_id)
        items.append({"id": info.item_id, **item_summary(item)})
        if item is None:
            continue
        for kind in ("points", "scribbles", "boxes"):
            for mark in getattr(item, kind):
                per_class[str(mark.class_)][kind] += 1
        for tag in item.tags or []:
            per_class[str(tag)]["tags"] += 1
    done = [it for it in items if it["annotated"]]
    totals = {
        "items": len(items),
        "annotated": len(done),
        "empty": sum(it["empty"] for it in items),
        "tagged": sum(it["tags"] is not None for it in items),
        **{kind: sum(it[kind] for it in items) for kind in ("points", "scribbles", "boxes")},
    }
    return {"items": items, "per_class": per_class, "totals": totals}
