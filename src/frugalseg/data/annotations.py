"""The annotation file ``frugalseg.annotations/1``: pydantic models, reading, writing, validation.

Annotations are data, not code: one JSON file beside the images says, per item,
which clicks, scribbles, boxes, image-level tags or full mask a clinician gave.
See ``docs/annotation-format.md`` for the public description of the format.

Coordinates are integer pixel indices (row ``y``, column ``x``) in the item's own
stored grid; box corners are inclusive. Class 0 is background and is always a
valid class id; the other ids must be keys of ``classes``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "frugalseg.annotations/1"


class _Strict(BaseModel):
    """Base of every model in the file: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    """One click: pixel (y, x) has class ``class_`` (``z`` is the slice index for volume items)."""

    class_: int = Field(alias="class")
    y: int
    x: int
    z: int | None = None


class Scribble(_Strict):
    """A scribble: every pixel of ``path`` (a list of [y, x] pairs, or [z, y, x] for volumes) has ``class``."""

    class_: int = Field(alias="class")
    path: list[list[int]]


class Box(_Strict):
    """A box of class ``class`` with inclusive corners (y0, x0)–(y1, x1) (``z`` for volume items)."""

    class_: int = Field(alias="class")
    y0: int
    x0: int
    y1: int
    x1: int
    z: int | None = None


class Item(_Strict):
    """Everything annotated on one item; an item with no field is unlabelled."""

    points: list[Point] = Field(default_factory=list)
    scribbles: list[Scribble] = Field(default_factory=list)
    boxes: list[Box] = Field(default_factory=list)
    tags: list[int] | None = None
    mask: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.points or self.scribbles or self.boxes or self.tags is not None or self.mask)


class AnnotationFile(_Strict):
    """The whole file: format version, class names, items by id, provenance."""

    format: str = FORMAT
    classes: dict[str, str]
    items: dict[str, Item] = Field(default_factory=dict)
    provenance: dict[str, object] = Field(default_factory=dict)
