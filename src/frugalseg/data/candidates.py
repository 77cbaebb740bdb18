"""Turn one annotation item into the constraints every loss reads: candidate maps and a presence vector.

DESIGN.md's one idea: each annotation says which classes a pixel may still take. This module
rasterises an :class:`~frugalseg.data.annotations.Item` on its slice's grid, *before* any
augmentation, into

* ``dense`` (C, H, W) bool: the constraints that cover regions (mask, boxes, tags);
* ``sparse`` points: pixel coordinates and classes of clicks and scribble pixels, kept as
  coordinates so that augmentation can move them exactly (a nearest-neighbour down-sampling of a
  one-pixel click would delete it three times out of four);
* ``presence`` (C,) int8: 1 present, 0 absent, -1 unknown;
* ``box_label`` / ``box_index`` (H, W) int64: the weak mask a box gives (class inside its box,
  background elsewhere, smaller boxes drawn over larger ones) and which box each pixel belongs to,
  for methods that weight each weak instance (DII); -1 where the item has no box.

Rules (DESIGN.md table): a mask (the stored one, or a ``label_map`` the file carries) makes every pixel a
singleton; a click or scribble pixel is a
singleton; a box of class c removes c outside the union of c's boxes and marks c present; tags
remove every untagged foreground class everywhere and mark it absent; tagged classes are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalseg.data.annotations import Item
from frugalseg.data.types import SliceItem
from frugalseg.errors import AnnotationError

PRESENT, ABSENT, UNKNOWN = 1, 0, -1


@dataclass
class Constraints:
    """The rasterised annotation of one slice (see the module docstring)."""

    dense: np.ndarray
    sparse_yx: np.ndarray
    sparse_class: np.ndarray
    presence: np.ndarray
    label: np.ndarray
    box_label: np.ndarray
    box_index: np.ndarray
    has_mask: bool


def rasterise(
    item: SliceItem, annotation: Item | None, num_classes: int, origin: str | Path = "<annotations>"
) -> Constraints:
    """Rasterise ``annotation`` (``None``: unlabelled) on ``item``'s grid.

    Raises:
        AnnotationError: ``mask: true`` on an item whose source has no label map, or a label map
            holding a class id outside ``[0, num_classes)``.
    """
    h, w = item.shape
    dense = np.ones((num_classes, h, w), dtype=bool)
    presence = np.full(num_classes, UNKNOWN, dtype=np.int8)
    label = np.full((h, w), -1, dtype=np.int64)
    box_label = np.full((h, w), -1, dtype=np.int64)
    box_index = np.full((h, w), -1, dtype=np.int64)
    ys: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    cs: list[np.ndarray] = []
    has_mask = False
    if annotation is not None:
        if annotation.has_full_label:
            label = _full_label(item, annotation, num_classes, origin)
            dense = label[None] == np.arange(num_classes)[:, None, None]
            presence[:] = ABSENT
            presence[np.bincount(label.ravel(), minlength=num_classes) > 0] = PRESENT
            has_mask = True
        if annotation.tags is not None:
            tagged = set(annotation.tags)
            for c in range(1, num_classes):
                if c in tagged:
                    presence[c] = PRESENT
                elif not has_mask:
                    dense[c] = False
                    presence[c] = ABSENT
        if annotation.boxes:
            _apply_boxes(annotation, dense, presence, box_label, box_index, has_mask)
        for p in annotation.points:
            ys.append(np.array([p.y]))
            xs.append(np.array([p.x]))
            cs.append(np.array([p.class_]))
            presence[p.class_] = PRESENT
        for s in annotation.scribbles:
            path = np.asarray(s.path, dtype=np.int64).reshape(-1, 2)
            ys.append(path[:, 0])
            xs.append(path[:, 1])
            cs.append(np.full(len(path), s.class_))
            presence[s.class_] = PRESENT
    if ys:
        sparse_yx = np.stack([np.concatenate(ys), np.concatenate(xs)], axis=1).astype(np.int64)
        sparse_class = np.concatenate(cs).astype(np.int64)
    else:
        sparse_yx = np.zeros((0, 2), dtype=np.int64)
        sparse_class = np.zeros(0, dtype=np.int64)
    return Constraints(dense, sparse_yx, sparse_class, presence, label, box_label, box_index, has_mask)


def _full_label(item: SliceItem, annotation: Item, num_classes: int, origin: str | Path) -> np.ndarray:
    """The item's full label: the stored mask (``mask: true``) or the file's ``label_map``, checked."""
    field = "mask" if annotation.mask else "label_map"
    if annotation.label_map is not None:
        label = annotation.label_map.to_array()
        if label.shape != item.shape:
            raise AnnotationError(origin, f"label_map shape {list(label.shape)} is not the image's {list(item.shape)}",
                                  item=item.item_id, field=field)
    elif item.label is None:
        raise AnnotationError(origin, "mask: true, but the data has no label map for this item",
                              item=item.item_id, field=field)
    else:
        label = item.label.astype(np.int64)
    if label.max(initial=0) >= num_classes:
        raise AnnotationError(origin, f"label map holds class {int(label.max())} >= {num_classes}",
                              item=item.item_id, field=field)
    return label


def _apply_boxes(
    annotation: Item,
    dense: np.ndarray,
    presence: np.ndarray,
    box_label: np.ndarray,
    box_index: np.ndarray,
    has_mask: bool,
) -> None:
    """Remove each boxed class outside its boxes; draw the weak box mask, smaller boxes on top."""
    inside: dict[int, np.ndarray] = {}
    for b in annotation.boxes:
        region = inside.setdefault(b.class_, np.zeros(dense.shape[1:], dtype=bool))
        region[b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = True
        presence[b.class_] = PRESENT
    if not has_mask:
        for c, region in inside.items():
            dense[c] &= region
    box_label[:] = 0
    areas = [(b.y1 - b.y0 + 1) * (b.x1 - b.x0 + 1) for b in annotation.boxes]
    for k in sorted(range(len(areas)), key=lambda i: (-areas[i], i)):
        b = annotation.boxes[k]
        box_label[b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = b.class_
        box_index[b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = k


def is_labelled(annotation: Item | None) -> bool:
    """Whether the item has any pixel whose class is certain (a mask, a click or a scribble)."""
    return annotation is not None and bool(annotation.has_full_label or annotation.points or annotation.scribbles)


__all__ = ["ABSENT", "PRESENT", "UNKNOWN", "Constraints", "is_labelled", "rasterise"]
