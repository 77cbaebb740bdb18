"""The annotation file ``frugalseg.annotations/1``: pydantic models, reading, writing, validation.

Annotations are data, not code: one JSON file beside the images says, per item,
which clicks, scribbles, boxes, image-level tags or full mask a clinician gave.
See ``docs/annotation-format.md`` for the public description of the format.

Coordinates are integer pixel indices (row ``y``, column ``x``) in the item's own
stored grid; box corners are inclusive. Class 0 is background and is always a
valid class id; the other ids must be keys of ``classes``.

Reading is strict on purpose: a typo in a hand-made file (``"colour"`` for
``"class"``, a click one pixel outside the image) would otherwise silently train
on the wrong labels. Writing is byte-deterministic, so that the same simulation
gives the same file on every machine and files can be compared with ``cmp``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from frugalseg.errors import AnnotationError
from frugalseg.files import atomic_path, refuse_existing

FORMAT = "frugalseg.annotations/1"

__all__ = [
    "FORMAT",
    "AnnotationFile",
    "Box",
    "Item",
    "LabelMap",
    "Point",
    "Scribble",
    "check_annotations",
    "check_data_classes",
    "class_uses",
    "dumps_annotations",
    "load_annotations",
    "parse_annotations",
    "save_annotations",
]


class _Strict(BaseModel):
    """Base of every model in the file: unknown fields are errors, not silently dropped."""

    # No populate_by_name: a file saying "class_" instead of "class" must be an unknown-field error.
    # Build models in Python with the alias: ``Point.model_validate({"class": 1, "y": 2, "x": 3})``.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Strict):
    """One click: pixel (y, x) has class ``class_`` (``z`` is the slice index for volume items)."""

    class_: int = Field(alias="class")
    y: int
    x: int
    z: int | None = None


class Scribble(_Strict):
    """A scribble: every pixel of ``path`` (a list of [y, x] pairs, or [z, y, x] for volumes) has ``class``.

    ``path`` lists the scribble's pixels; consecutive entries are *not* joined by a
    line (a drawing tool rasterises its stroke before writing it), so a reader never
    has to guess how a gap between two entries was meant to be filled.
    """

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


class LabelMap(_Strict):
    """A full 2D label map carried in the file (e.g. a model's pseudo-label), run-length encoded.

    ``runs`` alternates class id and run length over the map in row-major order:
    ``[0, 500, 3, 12, 0, 43]`` is 500 background pixels, 12 of class 3, 43 of background. Unlike
    ``mask: true`` (the data's own stored label), it says where the label came from: nobody drew it, so
    it costs no annotator time (``frugalseg.bench.cost`` counts the boxes or clicks it was made from).
    """

    shape: list[int]
    runs: list[int]

    @classmethod
    def from_array(cls, label: np.ndarray) -> LabelMap:
        """Encode an (H, W) array of class ids."""
        if label.ndim != 2:
            raise ValueError(f"a label map is 2D (H, W), got shape {label.shape}")
        flat = np.asarray(label, dtype=np.int64).ravel()
        if flat.size == 0:
            raise ValueError("a label map needs at least one pixel")
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
        lengths = np.diff(np.r_[starts, flat.size])
        runs = np.stack([flat[starts], lengths], axis=1).ravel()
        return cls(shape=[int(label.shape[0]), int(label.shape[1])], runs=[int(v) for v in runs])

    def to_array(self) -> np.ndarray:
        """Decode to an (H, W) int64 array (the file must have been validated: lengths add up to H * W)."""
        pairs = np.asarray(self.runs, dtype=np.int64).reshape(-1, 2)
        return np.repeat(pairs[:, 0], pairs[:, 1]).reshape(self.shape)


class Item(_Strict):
    """Everything annotated on one item; an item with no field is unlabelled."""

    points: list[Point] = Field(default_factory=list)
    scribbles: list[Scribble] = Field(default_factory=list)
    boxes: list[Box] = Field(default_factory=list)
    tags: list[int] | None = None
    mask: bool = False
    label_map: LabelMap | None = None

    @property
    def has_full_label(self) -> bool:
        """Every pixel's class is given: the stored mask (``mask: true``) or a carried ``label_map``."""
        return self.mask or self.label_map is not None

    @property
    def is_empty(self) -> bool:
        return not (self.points or self.scribbles or self.boxes or self.tags is not None or self.has_full_label)


class AnnotationFile(_Strict):
    """The whole file: format version, class names, items by id, provenance."""

    format: str = FORMAT
    classes: dict[str, str]
    items: dict[str, Item] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# reading


def _where(loc: tuple[int | str, ...]) -> tuple[str | None, str | None]:
    """Split a pydantic error location into (item id, dotted field inside the item or the file)."""
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "items":
        return parts[1], (".".join(parts[2:]) or None)
    return None, (".".join(parts) or None)


def _problem(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "missing field"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[:1].lower() + msg[1:]
    if "input" in err:
        msg += f" (got {json.dumps(err['input'], default=str)[:60]})"
    return msg


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_annotations(
    path: str | Path, grids: Mapping[str, tuple[int, ...]] | None = None
) -> AnnotationFile:
    """Read and validate an annotation file.

    Every check runs before the caller gets anything, so a broken file stops a run
    before it writes a single output; each error names the file, and where it
    applies the item and the dotted field (``points.0.y``).

    Args:
        path: the JSON file.
        grids: item id → stored shape, ``(H, W)`` for a 2D item or ``(D, H, W)`` for a volume item.
            When given, every coordinate must lie inside its item's grid, volume items need ``z``
            (2D items must not have it), and every annotated item must exist in the data.

    Returns:
        The validated file.

    Raises:
        AnnotationError: the file is missing, is not JSON, has another format version, has an
            unknown or missing field, a bad class id, unordered box corners, or does not fit ``grids``.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, "annotation file does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"cannot be read as UTF-8 text: {exc}") from exc
    _check_depth(text, path)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except ValueError as exc:
        raise AnnotationError(path, f"invalid JSON: {exc}") from exc
    return parse_annotations(data, path, grids)


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a file may have (the format needs 6; ``provenance`` gets the rest)."""


def _check_depth(text: str, path: str | Path) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` before parsing it (a file nested 100,000 deep would
    exhaust Python's recursion limit in the parser, in pydantic or in the writer, each with a traceback)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    raise AnnotationError(path, f"invalid JSON: nested more than {MAX_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1


def parse_annotations(
    data: Any, path: str | Path = "<annotations>", grids: Mapping[str, tuple[int, ...]] | None = None
) -> AnnotationFile:
    """Validate already-decoded JSON (``load_annotations`` without the file reading); errors name ``path``."""
    if not isinstance(data, dict):
        raise AnnotationError(path, f"the file must hold a JSON object, not {type(data).__name__}")
    # The version is checked first: a future version may have fields this reader does not know, and
    # "unsupported version" is the useful message then, not "unknown field".
    if "format" not in data:
        raise AnnotationError(path, f"missing field (expected {FORMAT!r})", field="format")
    if data["format"] != FORMAT:
        raise AnnotationError(
            path, f"unsupported format version {data['format']!r} (expected {FORMAT!r})", field="format"
        )
    try:
        ann = AnnotationFile.model_validate(data, strict=True)
    except RecursionError:
        raise AnnotationError(path, f"nested more than {MAX_DEPTH} levels deep") from None
    except ValidationError as exc:
        # An unknown field first: a misspelt field is also reported missing, and the spelling is the cause.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        item, field = _where(tuple(first["loc"]))
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise AnnotationError(path, _problem(first) + more, item=item, field=field) from None
    check_annotations(ann, grids, path)
    return ann


def _check_classes(ann: AnnotationFile, path: str | Path) -> set[int]:
    valid = {0}
    for key in ann.classes:
        if not (key.isascii() and key.isdigit()) or key != str(int(key)) or int(key) < 1:
            raise AnnotationError(
                path, "class ids must be positive integers written in decimal (0 is background, implicit)",
                field=f"classes.{key}",
            )
        valid.add(int(key))
    return valid


def check_annotations(
    ann: AnnotationFile, grids: Mapping[str, tuple[int, ...]] | None = None, path: str | Path = "<annotations>"
) -> None:
    """Check the rules a schema cannot express: class ids, corner order, and (with ``grids``) the data's grid.

    Args:
        ann: a parsed file.
        grids: item id → stored shape (H, W) or (D, H, W); ``None`` skips the checks against the data.
        path: the name errors give for the file.

    Raises:
        AnnotationError: naming the item and the field of the first problem found (items in sorted order).
    """
    if ann.format != FORMAT:
        raise AnnotationError(path, f"unsupported format version {ann.format!r} (expected {FORMAT!r})", field="format")
    valid = _check_classes(ann, path)
    for item_id in sorted(ann.items):
        grid = None
        if grids is not None:
            if item_id not in grids:
                raise AnnotationError(path, "no such item in the data", item=item_id)
            grid = tuple(int(s) for s in grids[item_id])
            if len(grid) not in (2, 3):
                raise ValueError(f"grid of {item_id!r} must be (H, W) or (D, H, W), got {grid}")
        _ItemChecker(path, item_id, grid, valid).check(ann.items[item_id])


class _ItemChecker:
    """The per-item rules; every failure names the file, the item and the dotted field."""

    def __init__(self, path: str | Path, item_id: str, grid: tuple[int, ...] | None, valid: set[int]) -> None:
        self.path = path
        self.item_id = item_id
        self.grid = grid
        self.valid = valid

    def fail(self, field: str, problem: str) -> None:
        raise AnnotationError(self.path, problem, item=self.item_id, field=field)

    def check_class(self, field: str, c: int) -> None:
        if c not in self.valid:
            known = ", ".join(str(v) for v in sorted(self.valid))
            self.fail(field, f"unknown class {c} (valid: {known}; 0 is background)")

    def check_coord(self, field: str, value: int, axis: int, name: str) -> None:
        """``axis`` indexes the grid from the end: -1 = x (columns), -2 = y (rows), -3 = z (slices)."""
        if value < 0:
            self.fail(field, f"{name}={value} is negative (coordinates are pixel indices from 0)")
        if self.grid is not None and value >= self.grid[axis]:
            self.fail(field, f"{name}={value} lies outside the image (grid {'x'.join(map(str, self.grid))})")

    def check_z(self, field: str, z: int | None) -> None:
        if self.grid is not None:
            if len(self.grid) == 3 and z is None:
                self.fail(field, "missing field (an item stored as a volume needs the slice index z)")
            if len(self.grid) == 2 and z is not None:
                self.fail(field, "z given for an item stored as a 2D image")
        if z is not None:
            self.check_coord(field, z, -3, "z")

    def check_label_map(self, item: Item) -> None:
        lm = item.label_map
        assert lm is not None
        if item.mask:
            self.fail("label_map", "give either mask: true (the stored label) or a label_map, not both")
        if len(lm.shape) != 2 or min(lm.shape) < 1:
            self.fail("label_map.shape", f"a label map is 2D with positive sides, [H, W] (got {lm.shape})")
        if self.grid is not None and tuple(lm.shape) != self.grid:
            self.fail("label_map.shape", f"shape {lm.shape} is not the image's grid {'x'.join(map(str, self.grid))}")
        if len(lm.runs) % 2:
            self.fail("label_map.runs", "runs alternate class and length, so their count must be even")
        for j in range(0, len(lm.runs), 2):
            self.check_class(f"label_map.runs.{j}", lm.runs[j])
            if lm.runs[j + 1] < 1:
                self.fail(f"label_map.runs.{j + 1}", f"run length {lm.runs[j + 1]} is not 1 or more")
        total = sum(lm.runs[1::2])
        if total != lm.shape[0] * lm.shape[1]:
            self.fail("label_map.runs", f"run lengths add up to {total}, not H*W = {lm.shape[0] * lm.shape[1]}")

    def check(self, item: Item) -> None:
        for i, p in enumerate(item.points):
            self.check_class(f"points.{i}.class", p.class_)
            self.check_z(f"points.{i}.z", p.z)
            self.check_coord(f"points.{i}.y", p.y, -2, "y")
            self.check_coord(f"points.{i}.x", p.x, -1, "x")
        for i, s in enumerate(item.scribbles):
            self.check_class(f"scribbles.{i}.class", s.class_)
            if not s.path:
                self.fail(f"scribbles.{i}.path", "empty path")
            width = len(s.path[0])
            allowed = {2, 3} if self.grid is None else {len(self.grid)}
            for j, px in enumerate(s.path):
                field = f"scribbles.{i}.path.{j}"
                if len(px) not in allowed or len(px) != width:
                    shape = {2: "[y, x]", 3: "[z, y, x]"}.get(len(self.grid or ()), "[y, x] or [z, y, x]")
                    self.fail(field, f"a pixel is {shape}, of one length within a path (got {px})")
                for k, v in enumerate(px):
                    self.check_coord(field, v, k - len(px), "zyx"[k - len(px)])
        for i, b in enumerate(item.boxes):
            self.check_class(f"boxes.{i}.class", b.class_)
            if b.class_ == 0:
                self.fail(f"boxes.{i}.class", "a box of background (class 0) says nothing; box foreground classes")
            self.check_z(f"boxes.{i}.z", b.z)
            for name in ("y0", "x0", "y1", "x1"):
                self.check_coord(f"boxes.{i}.{name}", getattr(b, name), -2 if name[0] == "y" else -1, name)
            if b.y0 > b.y1:
                self.fail(f"boxes.{i}.y1", f"box corners out of order: y1={b.y1} < y0={b.y0} (corners are inclusive)")
            if b.x0 > b.x1:
                self.fail(f"boxes.{i}.x1", f"box corners out of order: x1={b.x1} < x0={b.x0} (corners are inclusive)")
        if item.label_map is not None:
            self.check_label_map(item)
        if item.tags is not None:
            seen: set[int] = set()
            for i, t in enumerate(item.tags):
                self.check_class(f"tags.{i}", t)
                if t in seen:
                    self.fail(f"tags.{i}", f"class {t} tagged twice")
                seen.add(t)
        self.check_agreement(item)

    def check_agreement(self, item: Item) -> None:
        """The labels of one item must not contradict each other: one class per labelled pixel, and no
        foreground click, scribble or box of a class its ``tags`` say is absent."""
        labelled: dict[tuple[int | None, int, int], tuple[int, str]] = {}
        pixels = [((p.z, p.y, p.x), p.class_, f"points.{i}") for i, p in enumerate(item.points)]
        pixels += [((px[0] if len(px) == 3 else None, px[-2], px[-1]), s.class_, f"scribbles.{i}.path.{j}")
                   for i, s in enumerate(item.scribbles) for j, px in enumerate(s.path)]
        for where, c, field in pixels:
            first = labelled.setdefault(where, (c, field))
            if first[0] != c:
                self.fail(field, f"pixel {_pixel(where)} is labelled class {c} here but class {first[0]} in "
                                 f"{first[1]}")
        if item.tags is None:
            return
        tagged = set(item.tags)
        for field, c in class_uses(item):
            if c != 0 and c not in tagged and not field.startswith("tags"):
                self.fail("tags", f"class {c} is not tagged (absent from the image) but {field} marks it")


def _pixel(where: tuple[int | None, int, int]) -> str:
    z, y, x = where
    return f"(y={y}, x={x})" if z is None else f"(z={z}, y={y}, x={x})"


def class_uses(item: Item) -> list[tuple[str, int]]:
    """(dotted field, class id) of every class an item mentions, in file order."""
    uses = [(f"points.{i}.class", p.class_) for i, p in enumerate(item.points)]
    uses += [(f"scribbles.{i}.class", s.class_) for i, s in enumerate(item.scribbles)]
    uses += [(f"boxes.{i}.class", b.class_) for i, b in enumerate(item.boxes)]
    uses += [(f"tags.{i}", t) for i, t in enumerate(item.tags or [])]
    return uses


def check_data_classes(ann: AnnotationFile, classes: Mapping[int, str], path: str | Path = "<annotations>") -> None:
    """Every class id of the file must be a class of the data it annotates.

    A class beyond the data's would load, then crash the first time its item is drawn for a batch
    (or, for a tag, be ignored without a word). The error names the first item and field using it,
    or ``classes.<id>`` when no item does.
    """
    known = set(classes) | {0}
    extra = sorted(int(k) for k in ann.classes if int(k) not in known)
    if not extra:
        return
    names = ", ".join(f"{k} {v}" for k, v in sorted(classes.items()))
    problem = f"class {extra[0]} is not a class of the data (data classes: {names}; 0 is background)"
    for item_id in sorted(ann.items):
        for field, c in class_uses(ann.items[item_id]):
            if c in extra:
                raise AnnotationError(path, problem.replace(str(extra[0]), str(c), 1), item=item_id, field=field)
    raise AnnotationError(path, problem, field=f"classes.{extra[0]}")


# --------------------------------------------------------------------------------------------------------------------
# writing


def _canonical(value: Any) -> Any:
    """Provenance in a machine-independent form: dict keys sorted, tuples as lists, JSON types only."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _canonical(value.item())
    raise TypeError(f"provenance value {value!r} of type {type(value).__name__} is not JSON")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def _point_json(p: Point) -> dict[str, int]:
    out = {"class": p.class_}
    if p.z is not None:
        out["z"] = p.z
    out["y"] = p.y
    out["x"] = p.x
    return out


def _box_json(b: Box) -> dict[str, int]:
    out = {"class": b.class_}
    if b.z is not None:
        out["z"] = b.z
    out.update(y0=b.y0, x0=b.x0, y1=b.y1, x1=b.x1)
    return out


def _item_lines(item: Item) -> list[str]:
    fields: list[tuple[str, Any]] = []
    if item.points:
        fields.append(("points", [_point_json(p) for p in item.points]))
    if item.scribbles:
        fields.append(("scribbles", [{"class": s.class_, "path": s.path} for s in item.scribbles]))
    if item.boxes:
        fields.append(("boxes", [_box_json(b) for b in item.boxes]))
    if item.tags is not None:
        fields.append(("tags", list(item.tags)))
    if item.mask:
        fields.append(("mask", True))
    if item.label_map is not None:
        fields.append(("label_map", {"shape": item.label_map.shape, "runs": item.label_map.runs}))
    return [f"{_compact(k)}: {_compact(v)}" for k, v in fields]


def dumps_annotations(ann: AnnotationFile) -> str:
    """The exact text ``save_annotations`` writes: deterministic, one item field per line.

    Items are sorted by id, classes by number, provenance keys alphabetically; the
    fixed key order is ``format, classes, items, provenance`` and, inside an item,
    ``points, scribbles, boxes, tags, mask, label_map`` (fields at their default are left out).
    """
    classes = {k: ann.classes[k] for k in sorted(ann.classes, key=lambda k: (len(k), k))}
    lines = ["{", f'  "format": {_compact(ann.format)},', f'  "classes": {_compact(classes)},']
    if not ann.items:
        lines.append('  "items": {},')
    else:
        lines.append('  "items": {')
        ids = sorted(ann.items)
        for n, item_id in enumerate(ids):
            body = _item_lines(ann.items[item_id])
            end = "," if n < len(ids) - 1 else ""
            if not body:
                lines.append(f"    {_compact(item_id)}: {{}}{end}")
                continue
            lines.append(f"    {_compact(item_id)}: {{")
            lines.extend(f"      {b}{',' if i < len(body) - 1 else ''}" for i, b in enumerate(body))
            lines.append(f"    }}{end}")
        lines.append("  },")
    prov = json.dumps(_canonical(ann.provenance), ensure_ascii=False, allow_nan=False, indent=2)
    lines.append('  "provenance": ' + prov.replace("\n", "\n  "))
    lines.append("}")
    return "\n".join(lines) + "\n"


def save_annotations(ann: AnnotationFile, path: str | Path, overwrite: bool = False) -> None:
    """Write ``ann`` atomically and byte-deterministically.

    The file is validated first (class ids, corner order) so that frugalseg never
    writes a file it would refuse to read. It is written to a temporary file in the
    same folder and renamed over the target, so a crash never leaves half a file.

    Args:
        ann: the annotations.
        path: target file.
        overwrite: replace an existing file; otherwise :class:`OutputExistsError`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        AnnotationError: ``ann`` breaks a rule of the format.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    check_annotations(ann, None, path)
    data = dumps_annotations(ann).encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        refuse_existing(path, overwrite)  # it may have appeared while we were writing
