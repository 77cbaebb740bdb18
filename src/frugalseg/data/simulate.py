"""Weak labels simulated from full masks, reproducibly, as the papers did.

Every benchmark row trains on annotations derived from ACDC's full masks: one
click per class (PSCV), skeleton scribbles (WSL4MIS), tight boxes per connected
component (MLDS, DII+DCR), image-level tags (MLDS), or a per-patient mix of them
with a few full masks (a *budget*). ``docs/simulation.md`` says which paper's
protocol each kind follows and where we had to reconstruct it.

Determinism: each item draws from its own generator, seeded by the run seed and
a SHA-256 hash of the item id (never Python's salted ``hash``). The output is
therefore independent of the order of the items, of how they are split over
workers, and of the machine; the same seed gives the same file bytes. Budgets
shuffle patients with a generator of their own, over patient ids sorted first,
so only ``masks.first_patients`` depends on the data's order, as it must (it
*is* the SSL4MIS convention "the first k patients of train_slices.list").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import ndimage

from frugalseg.data.annotations import AnnotationFile, Box, Item, Point, Scribble, save_annotations
from frugalseg.data.types import SliceItem
from frugalseg.data.volumes import volume_slices
from frugalseg.errors import ConfigError, DataError, OutputExistsError

__all__ = [
    "BUDGET_KINDS",
    "CORRUPTIONS",
    "KINDS",
    "SIMULATOR",
    "BoxOptions",
    "Budget",
    "PointOptions",
    "SLICE_RULES",
    "ScribbleOptions",
    "SliceSpec",
    "TagOptions",
    "annotator_tags",
    "assign_patients",
    "budget_path",
    "choose_slices",
    "corrupt_boxes",
    "item_rng",
    "load_budget",
    "patient_order",
    "simulate_boxes",
    "simulate_file",
    "simulate_items",
    "simulate_points",
    "simulate_scribbles",
    "simulate_tags",
]

SIMULATOR = "frugalseg.simulate/1"
"""Recorded in every simulated file's provenance; bumped whenever an algorithm changes its output."""

KINDS = ("points", "scribbles", "boxes", "tags", "budget")
"""What ``frugalseg simulate --kind`` accepts."""

CORRUPTIONS = ("shift", "class", "mixed")
"""What a corrupted box can suffer (:class:`BoxOptions` ``corruption``)."""

BUDGET_KINDS = ("masks", "scribbles", "points", "boxes", "tags", "unlabelled")
"""What a budget can give a patient, in the fixed order used to break ties and lay out blocks."""

_EIGHT = np.ones((3, 3), dtype=bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------------------------------------------------
# randomness


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """The generator of one item: seeded by ``seed`` and SHA-256 of the id, so order and workers do not matter."""
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _hash_int(item_id)])))


# --------------------------------------------------------------------------------------------------------------------
# options


class _Options:
    """Shared behaviour of the per-kind option records: built from a mapping, unknown keys are errors."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "options") -> Any:
        values = dict(values or {})
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]  # subclasses are dataclasses
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]


def _need_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class PointOptions(_Options):
    """Clicks, PSCV's protocol (docs/simulation.md): one uniform pixel per class present in the slice.

    Attributes:
        include_background: click the background too (default; without it partial CE never sees background).
    """

    include_background: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.include_background, bool):
            raise ValueError(f"include_background must be true or false, got {self.include_background!r}")


@dataclass(frozen=True)
class ScribbleOptions(_Options):
    """Scribbles, the WSL4MIS generator (Luo et al., MICCAI 2022; ``code/scribbles_generator.py``).

    Attributes:
        include_background: scribble the background too (its skeleton, as WSL4MIS does).
        erosion: (low, high) erosion iterations before skeletonising a region larger than
            ``erosion_min_area``; the count is ceil(low + u·(high − low)), u ~ U[0, 1). WSL4MIS's
            function default is (4, 10); (1, 2) is what its script ran for WORD and our default,
            because ACDC's myocardium is a ring only a few pixels thick at the stored resolution.
        erosion_min_area: regions with more pixels than this are eroded first (WSL4MIS: 900).
        min_branch: besides the largest skeleton component, components with more than this many
            pixels are walked too (WSL4MIS: 15).
        dilation: 3×3 dilations of the walked path (WSL4MIS: 1, a stroke about 3 pixels wide).
        perturb_min_area: regions with more pixels than this get their scribble shifted and rotated
            (WSL4MIS: 1000), imitating an imprecise hand.
        max_shift: shift of up to ± this many pixels along each axis (WSL4MIS: 6).
        max_rotation: rotation about the image centre by up to ± this many degrees (WSL4MIS: 15).
    """

    include_background: bool = True
    erosion: tuple[int, int] = (1, 2)
    erosion_min_area: int = 900
    min_branch: int = 15
    dilation: int = 1
    perturb_min_area: int = 1000
    max_shift: int = 6
    max_rotation: float = 15.0

    def __post_init__(self) -> None:
        if not isinstance(self.include_background, bool):
            raise ValueError(f"include_background must be true or false, got {self.include_background!r}")
        ero = tuple(self.erosion) if isinstance(self.erosion, (list, tuple)) else None
        if ero is None or len(ero) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in ero):
            raise ValueError(f"erosion must be [low, high] integers, got {self.erosion!r}")
        if not 0 <= ero[0] <= ero[1]:
            raise ValueError(f"erosion must satisfy 0 <= low <= high, got {list(ero)}")
        object.__setattr__(self, "erosion", ero)
        for name in ("erosion_min_area", "min_branch", "dilation", "perturb_min_area", "max_shift"):
            _need_int(name, getattr(self, name), 0)
        if isinstance(self.max_rotation, bool) or not isinstance(self.max_rotation, (int, float)):
            raise ValueError(f"max_rotation must be a number of degrees, got {self.max_rotation!r}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"max_rotation must lie in [0, 180] degrees, got {self.max_rotation}")
        object.__setattr__(self, "max_rotation", float(self.max_rotation))


@dataclass(frozen=True)
class BoxOptions(_Options):
    """Boxes: the tight box of every connected component of every foreground class (MLDS; docs/simulation.md).

    Attributes:
        connectivity: 8 (default: pixels touching at a corner are one object) or 4.
        min_size: components with fewer pixels get no box (default 1: every component is boxed).
            A dropped component breaks "class c lies inside its boxes", so keep 1 for the paper rows.
        jitter: move each box side by a uniform integer in [−jitter, jitter] pixels, clipped to the
            image (robustness experiments; 0, the default, gives tight boxes and draws no random numbers).
        with_tags: also write the item's tags. Boxes are drawn exhaustively, so a class without a box
            is absent; saying so explicitly keeps a box-annotated slice with no foreground from looking
            unlabelled, and lets the candidate map remove absent classes (MLDS treats them as negatives).
        corrupt_fraction: probability that a box is corrupted (noisy-weak-label experiments, DII + DCR);
            the corrupted boxes are listed in the file's provenance (``corrupted_boxes``) so that an
            evaluation can tell them apart. 0, the default, corrupts nothing and draws no random numbers.
        corruption: what a corrupted box suffers: ``shift`` (moved, see ``corrupt_shift``), ``class``
            (another foreground class, drawn uniformly) or ``mixed`` (either, with probability 1/2).
        corrupt_shift: a shifted box moves by this fraction of its own height and width, in a uniformly
            drawn direction, then back inside the image if it left it (its size is kept).
    """

    connectivity: int = 8
    min_size: int = 1
    jitter: int = 0
    with_tags: bool = True
    corrupt_fraction: float = 0.0
    corruption: str = "shift"
    corrupt_shift: float = 0.5

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8) or isinstance(self.connectivity, bool):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity!r}")
        _need_int("min_size", self.min_size, 1)
        _need_int("jitter", self.jitter, 0)
        if not isinstance(self.with_tags, bool):
            raise ValueError(f"with_tags must be true or false, got {self.with_tags!r}")
        for name in ("corrupt_fraction", "corrupt_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.corrupt_fraction <= 1.0:
            raise ValueError(f"corrupt_fraction must lie in [0, 1], got {self.corrupt_fraction}")
        if self.corrupt_shift <= 0.0:
            raise ValueError(f"corrupt_shift must be positive, got {self.corrupt_shift}")
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {', '.join(CORRUPTIONS)}, got {self.corruption!r}")

    def as_dict(self) -> dict[str, Any]:
        """The options as recorded in provenance; the corruption options only when boxes are corrupted.

        Leaving them out at their default keeps the files simulated before they existed byte-identical.
        """
        out = super().as_dict()
        if not self.corrupt_fraction:
            for name in ("corrupt_fraction", "corruption", "corrupt_shift"):
                out.pop(name)
        return out


@dataclass(frozen=True)
class TagOptions(_Options):
    """Image-level tags: the foreground classes present in the slice. No options."""


_OPTIONS: dict[str, type[_Options]] = {
    "points": PointOptions,
    "scribbles": ScribbleOptions,
    "boxes": BoxOptions,
    "tags": TagOptions,
}


# --------------------------------------------------------------------------------------------------------------------
# the kinds, one slice at a time


def _present(label: np.ndarray) -> list[int]:
    return [int(c) for c in np.unique(label)]


def simulate_points(label: np.ndarray, rng: np.random.Generator, options: PointOptions | None = None) -> list[Point]:
    """One click per class present, drawn uniformly over that class's pixels (PSCV; docs/simulation.md).

    Classes are visited in increasing order and pixels in row-major order, so one
    draw per class from ``rng`` fixes the output.
    """
    options = options or PointOptions()
    flat = label.reshape(-1)
    width = label.shape[1]
    points = []
    for c in _present(label):
        if c == 0 and not options.include_background:
            continue
        where = np.flatnonzero(flat == c)
        k = int(where[int(rng.integers(len(where)))])
        points.append(Point.model_validate({"class": c, "y": k // width, "x": k % width}))
    return points


def simulate_tags(label: np.ndarray) -> list[int]:
    """The foreground classes present in the slice, sorted (background is never tagged: it is always allowed)."""
    return [c for c in _present(label) if c != 0]


def simulate_boxes(label: np.ndarray, rng: np.random.Generator, options: BoxOptions | None = None) -> list[Box]:
    """The tight box (inclusive corners) of each connected component of each foreground class.

    Boxes come sorted by class, then by the component's first pixel in row-major order.
    """
    options = options or BoxOptions()
    h, w = label.shape
    structure = _EIGHT if options.connectivity == 8 else _FOUR
    boxes = []
    for c in simulate_tags(label):
        comp, n = ndimage.label(label == c, structure=structure)
        sizes = np.bincount(comp.reshape(-1), minlength=n + 1)
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            if sl is None or sizes[k] < options.min_size:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop - 1, sl[1].start, sl[1].stop - 1
            if options.jitter:
                d = rng.integers(-options.jitter, options.jitter + 1, size=4)
                ya, yb = int(np.clip(y0 + d[0], 0, h - 1)), int(np.clip(y1 + d[2], 0, h - 1))
                xa, xb = int(np.clip(x0 + d[1], 0, w - 1)), int(np.clip(x1 + d[3], 0, w - 1))
                y0, y1, x0, x1 = min(ya, yb), max(ya, yb), min(xa, xb), max(xa, xb)
            boxes.append(Box.model_validate({"class": c, "y0": int(y0), "x0": int(x0), "y1": int(y1), "x1": int(x1)}))
    return boxes


def corrupt_boxes(
    boxes: Sequence[Box], shape: tuple[int, int], num_classes: int, rng: np.random.Generator, options: BoxOptions
) -> tuple[list[Box], list[int]]:
    """Corrupt each box with probability ``options.corrupt_fraction``: a noisy annotator, reproducibly.

    Boxes are visited in order; each draws one uniform number (corrupted or not) and a corrupted one
    draws what it needs: for ``mixed`` one more uniform (shift or class), then for a shift the
    direction θ ~ U[0, 2π) and for a class change a uniform pick among the other foreground classes.
    A shift moves the box by ``(round(s·h·sin θ), round(s·w·cos θ))`` with s = ``corrupt_shift`` and
    (h, w) its size, then moves it back inside the ``shape`` if needed, keeping its size.

    Returns:
        the boxes (corrupted ones replaced, order kept) and the indices of the boxes that changed (a
        shift that leaves a box where it was, a one-pixel box or one against the border, is not listed).

    Raises:
        ValueError: ``class`` or ``mixed`` corruption with fewer than two foreground classes.
    """
    if options.corruption != "shift" and num_classes < 3:
        raise ValueError(f"corruption {options.corruption!r} needs two foreground classes; the data has "
                         f"{num_classes - 1}")
    h_img, w_img = shape
    out: list[Box] = []
    corrupted: list[int] = []
    for k, b in enumerate(boxes):
        if float(rng.random()) >= options.corrupt_fraction:
            out.append(b)
            continue
        kind = options.corruption
        if kind == "mixed":
            kind = "shift" if float(rng.random()) < 0.5 else "class"
        y0, x0, y1, x1, c = b.y0, b.x0, b.y1, b.x1, b.class_
        if kind == "shift":
            theta = float(rng.uniform(0.0, 2.0 * math.pi))
            h, w = y1 - y0 + 1, x1 - x0 + 1
            y0 = int(np.clip(y0 + round(options.corrupt_shift * h * math.sin(theta)), 0, h_img - h))
            x0 = int(np.clip(x0 + round(options.corrupt_shift * w * math.cos(theta)), 0, w_img - w))
            y1, x1 = y0 + h - 1, x0 + w - 1
        else:
            others = [o for o in range(1, num_classes) if o != c]
            c = others[int(rng.integers(len(others)))]
        new = Box.model_validate({"class": c, "y0": y0, "x0": x0, "y1": y1, "x1": x1})
        if new != b:  # a shift can leave a one-pixel box, or one against the border, where it was
            corrupted.append(k)
        out.append(new)
    return out, corrupted


def annotator_tags(present: Sequence[int], boxes: Sequence[Box]) -> list[int]:
    """The tags of a box-annotated slice: the classes truly present, plus every class a box names.

    The two differ only for a noisy annotator (:func:`corrupt_boxes`) that gave a box a class absent from
    the slice. The tags stay the truth otherwise (the noise under study is in the boxes), but a tag list
    that called a boxed class absent would contradict the file's own boxes, which frugalseg refuses
    (:mod:`frugalseg.data.annotations`), so that class is tagged.
    """
    return sorted(set(present) | {b.class_ for b in boxes})


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.int16)
    return ndimage.convolve(m, np.ones((3, 3), dtype=np.int16), mode="constant") - m


_STEPS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _walk(skeleton: np.ndarray, component: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> None:
    """A random walk along one skeleton component from an end point, marking ``out`` (WSL4MIS's branch cut).

    Start: the first end point (one skeleton neighbour) in row-major order, else the
    first pixel (a closed loop). Each step goes to a neighbour not yet on the path,
    chosen uniformly; the walk stops where there is none. The result is one branch of
    the skeleton, which is what a hand-drawn stroke looks like.
    """
    h, w = skeleton.shape
    ends = component & (_neighbour_count(skeleton) == 1)
    start_candidates = np.argwhere(ends) if ends.any() else np.argwhere(component)
    y, x = (int(v) for v in start_candidates[0])
    out[y, x] = True
    while True:
        options = [
            (y + dy, x + dx)
            for dy, dx in _STEPS
            if 0 <= y + dy < h and 0 <= x + dx < w and component[y + dy, x + dx] and not out[y + dy, x + dx]
        ]
        if not options:
            return
        y, x = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
        out[y, x] = True


def _shift_rotate(mask: np.ndarray, dy: int, dx: int, degrees: float, where: np.ndarray) -> np.ndarray:
    """``mask`` shifted by (dy, dx) then rotated about the image centre, nearest neighbour, zero fill.

    Only the pixels of ``where`` are computed (the result is clipped to the class anyway). The
    centre is (H/2, W/2) in pixel-corner coordinates, like PIL's ``Image.rotate`` that WSL4MIS uses.
    """
    h, w = mask.shape
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    yy, xx = np.nonzero(where)
    py, px = yy + 0.5 - h / 2.0, xx + 0.5 - w / 2.0
    # inverse rotation of each output pixel centre, then undo the shift
    iy = np.floor(cos * py - sin * px + h / 2.0 - dy).astype(np.int64)
    ix = np.floor(sin * py + cos * px + w / 2.0 - dx).astype(np.int64)
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    out = np.zeros_like(mask, dtype=bool)
    out[yy[inside], xx[inside]] = mask[iy[inside], ix[inside]]
    return out


def _scribble_mask(region: np.ndarray, c: int, rng: np.random.Generator, opts: ScribbleOptions) -> np.ndarray:
    from skimage.morphology import skeletonize

    # Work in the region's bounding box plus a margin of empty pixels: every step up to the
    # dilation is local, so the result equals the full-image computation, several times faster.
    ys, xs = np.nonzero(region)
    m = opts.dilation + 2
    y0, y1 = max(int(ys.min()) - m, 0), min(int(ys.max()) + m + 1, region.shape[0])
    x0, x1 = max(int(xs.min()) - m, 0), min(int(xs.max()) + m + 1, region.shape[1])
    crop = region[y0:y1, x0:x1]
    area = len(ys)
    core = crop
    lo, hi = opts.erosion
    if area > opts.erosion_min_area and hi > 0:
        iterations = math.ceil(lo + float(rng.random()) * (hi - lo))
        # WSL4MIS keeps an emptied region empty (the class then gets no scribble); we erode less instead.
        for it in range(iterations, 0, -1):
            eroded = ndimage.binary_erosion(crop, structure=_EIGHT, iterations=it)
            if eroded.any():
                core = eroded
                break
    skeleton = skeletonize(core, method="lee").astype(bool)
    if not skeleton.any():  # a region too small to thin: keep it as it is
        skeleton = core.copy()
    full = np.zeros_like(region, dtype=bool)
    if c == 0:  # WSL4MIS: the background's whole skeleton, not cut, dilated or moved
        full[y0:y1, x0:x1] = skeleton & crop
        return full
    comp, n = ndimage.label(skeleton, structure=_EIGHT)
    sizes = np.bincount(comp.reshape(-1), minlength=n + 1)
    largest = int(np.argmax(sizes[1:])) + 1
    path = np.zeros_like(crop, dtype=bool)
    for k in range(1, n + 1):
        if k == largest or sizes[k] > opts.min_branch:
            _walk(skeleton, comp == k, rng, path)
    if opts.dilation:
        path = ndimage.binary_dilation(path, structure=_EIGHT, iterations=opts.dilation)
    full[y0:y1, x0:x1] = path
    scribble = full & region
    if area > opts.perturb_min_area and (opts.max_shift or opts.max_rotation):
        dy, dx = (int(v) for v in rng.integers(-opts.max_shift, opts.max_shift + 1, size=2))
        degrees = float(rng.uniform(-opts.max_rotation, opts.max_rotation))
        moved = _shift_rotate(full, dy, dx, degrees, region)
        if moved.any():  # WSL4MIS drops a scribble moved off its region; we keep the unmoved one instead
            scribble = moved
    return scribble


def simulate_scribbles(
    label: np.ndarray, rng: np.random.Generator, options: ScribbleOptions | None = None
) -> list[Scribble]:
    """Scribbles per class present, after the WSL4MIS generator (see :class:`ScribbleOptions`).

    For each class in increasing order: erode a large region a little, skeletonise it
    (Lee's method, as WSL4MIS), walk one random branch of each sizeable skeleton
    component, thicken it by a 3×3 dilation, jitter it (shift and rotation) for large
    regions, and keep only the pixels on the class. The background gets its eroded
    skeleton. Each connected piece (8-connectivity) becomes one :class:`Scribble`
    whose ``path`` lists its pixels in row-major order.
    """
    options = options or ScribbleOptions()
    scribbles = []
    for c in _present(label):
        if c == 0 and not options.include_background:
            continue
        mask = _scribble_mask(label == c, c, rng, options)
        if mask.any():
            scribbles.append(Scribble.model_validate({"class": c, "path": np.argwhere(mask).tolist()}))
    return scribbles


def _simulate_one(
    kind: str, label: np.ndarray, rng: np.random.Generator, options: Any, num_classes: int
) -> tuple[Item, list[int]]:
    """One item's annotation and the indices of its corrupted boxes (empty unless boxes are corrupted)."""
    if kind == "masks":
        return Item(mask=True), []
    if kind == "points":
        return Item(points=simulate_points(label, rng, options)), []
    if kind == "scribbles":
        return Item(scribbles=simulate_scribbles(label, rng, options)), []
    if kind == "boxes":
        boxes = simulate_boxes(label, rng, options)
        corrupted: list[int] = []
        if options.corrupt_fraction:
            boxes, corrupted = corrupt_boxes(boxes, label.shape, num_classes, rng, options)
        tags = annotator_tags(simulate_tags(label), boxes) if options.with_tags else None
        return Item(boxes=boxes, tags=tags), corrupted
    if kind == "tags":
        return Item(tags=simulate_tags(label)), []
    raise ValueError(f"unknown kind {kind!r}")


# --------------------------------------------------------------------------------------------------------------------
# budgets


class _BudgetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaskSpec(_BudgetModel):
    """Which patients get full masks: the first k in the data's order, or a seeded random fraction."""

    first_patients: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, ge=0, le=1)


SLICE_RULES = ("even", "random")
"""How a sparse budget picks the slices of a volume (:class:`SliceSpec` ``rule``)."""


class SliceSpec(_BudgetModel):
    """A sparse budget: ``kind`` on ``per_volume`` slices of every volume, the volume's other slices unlabelled.

    Attributes:
        per_volume: slices annotated per volume (a volume with fewer gets all of them).
        rule: ``even``: the centres of ``per_volume`` equal runs of the volume's slices, slice index
            ⌊(2i + 1)·S / (2n)⌋ for i < n of S slices in slice order (one slice: the middle one; the seed
            plays no part); ``random``: n slices drawn uniformly without replacement by a generator
            seeded by the run seed and the volume's id.
        kind: the annotation the chosen slices get (masks, points, scribbles, boxes or tags).
    """

    per_volume: int = Field(ge=1)
    rule: str = "even"
    kind: str = "masks"

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if v not in SLICE_RULES:
            raise ValueError(f"unknown rule {v!r} (known: {', '.join(SLICE_RULES)})")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        annotated = [k for k in BUDGET_KINDS if k != "unlabelled"]
        if v not in annotated:
            raise ValueError(f"unknown kind {v!r} (known: {', '.join(annotated)})")
        return v


class Budget(_BudgetModel):
    """An annotation budget: full masks for some patients, the rest split among kinds in given proportions.

    Or, with ``slices``, a sparse budget: a few slices of every volume annotated, the others unlabelled
    (exclusive with ``masks`` and ``rest``).

    Attributes:
        masks: which patients get full masks (none when absent).
        rest: kind → weight for the other patients, normalised to proportions (default: all unlabelled).
        slices: a sparse budget's rule (:class:`SliceSpec`); every patient is then treated alike.
        options: kind → options of that kind (as ``--kind`` would take them).
    """

    masks: MaskSpec | None = None
    rest: dict[str, float] = Field(default_factory=lambda: {"unlabelled": 1.0})
    slices: SliceSpec | None = None
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sparse_alone(self) -> Budget:
        if self.slices is not None and ({"masks", "rest"} & self.model_fields_set):
            raise ValueError("slices (a sparse budget) cannot be combined with masks or rest")
        return self

    @field_validator("masks")
    @classmethod
    def _one_rule(cls, v: MaskSpec | None) -> MaskSpec | None:
        if v is not None and (v.first_patients is None) == (v.fraction is None):
            raise ValueError("give exactly one of first_patients or fraction")
        return v

    @field_validator("rest")
    @classmethod
    def _rest(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(BUDGET_KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)} (known: {', '.join(BUDGET_KINDS)})")
        if any(w < 0 or not math.isfinite(w) for w in v.values()):
            raise ValueError("weights must be finite and >= 0")
        if not v or sum(v.values()) <= 0:
            raise ValueError("at least one kind needs a positive weight")
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for kind, opts in v.items():
            if kind not in _OPTIONS:
                raise ValueError(f"no options for kind {kind!r} (kinds with options: {', '.join(_OPTIONS)})")
            _OPTIONS[kind].from_mapping(opts, f"options.{kind}")
        return v

    def kind_options(self, kind: str) -> Any:
        """The resolved options record of ``kind`` (defaults where the budget says nothing)."""
        return _OPTIONS[kind].from_mapping(self.options.get(kind), f"options.{kind}") if kind in _OPTIONS else None

    def as_dict(self) -> dict[str, Any]:
        """The budget as written in provenance (unset fields left out)."""
        return self.model_dump(exclude_none=True)


def budget_path(name: str | Path) -> Path:
    """A budget file path, or the name (with or without ``.yaml``) of one shipped in ``configs/budgets/``."""
    p = Path(name)
    if p.is_file():
        return p
    shipped = Path(__file__).resolve().parent.parent / "configs" / "budgets"
    for candidate in (shipped / p.name, shipped / f"{p.name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(f.stem for f in shipped.glob("*.yaml"))) if shipped.is_dir() else "none"
    raise ConfigError(f"{name}: no such budget file, and no budget shipped under that name (shipped: {known})")


def load_budget(source: str | Path | Mapping[str, Any] | Budget) -> Budget:
    """Read a budget from a YAML/JSON file, a shipped budget's name, or a mapping; :class:`ConfigError` if bad."""
    if isinstance(source, Budget):
        return source
    where = "budget"
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        path = budget_path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the budget: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a budget is a mapping (masks, rest, options), got {type(data).__name__}")
    try:
        return Budget.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
        raise ConfigError(f"{where}: {loc}: {msg}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def patient_order(items: Sequence[SliceItem]) -> list[str]:
    """Patients in order of first appearance (SSL4MIS: the order of ``train_slices.list``)."""
    return list(dict.fromkeys(it.patient_id for it in items))


def choose_slices(items: Sequence[SliceItem], spec: SliceSpec, seed: int) -> dict[str, list[str]]:
    """The item ids a sparse budget annotates, by volume (case id), each in slice order (see :class:`SliceSpec`)."""
    seed = _check_seed(seed)
    chosen: dict[str, list[str]] = {}
    for case, slices in volume_slices(items).items():
        s, n = len(slices), min(spec.per_volume, len(slices))
        if spec.rule == "even":
            picks = [((2 * i + 1) * s) // (2 * n) for i in range(n)]
        else:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _hash_int(f"slices:{case}")])))
            picks = sorted(int(k) for k in rng.choice(s, size=n, replace=False))
        chosen[case] = [slices[k].item_id for k in picks]
    return chosen


def _largest_remainder(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` by ``weights`` with Hamilton's method, in exact arithmetic; ties go to BUDGET_KINDS order."""
    kinds = [k for k in BUDGET_KINDS if weights.get(k, 0) > 0]
    exact = {k: Fraction(repr(float(weights[k]))) for k in kinds}
    norm = sum(exact.values())
    quota = {k: exact[k] * total / norm for k in kinds}
    counts = {k: math.floor(q) for k, q in quota.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(kinds, key=lambda k: (-(quota[k] - counts[k]), BUDGET_KINDS.index(k)))
    for k in by_remainder[:left]:
        counts[k] += 1
    return counts


def assign_patients(patients: Sequence[str], budget: Budget, seed: int) -> dict[str, str]:
    """Give every patient one kind of annotation (all its slices share it).

    Masks go to the first ``first_patients`` patients of ``patients`` (the data's order),
    or to a seeded ``fraction`` of them (rounded half up). The others are sorted by id,
    shuffled with a generator seeded by ``seed``, and cut into consecutive blocks, one
    per kind in :data:`BUDGET_KINDS` order, sized by the largest-remainder method.

    Returns:
        patient id → kind.
    """
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    patients = list(patients)
    if len(set(patients)) != len(patients):
        raise ValueError("patients must be distinct")
    masked: list[str] = []
    if budget.masks is not None:
        if budget.masks.first_patients is not None:
            k = budget.masks.first_patients
            if k > len(patients):
                raise ConfigError(f"budget: masks.first_patients = {k} but the data has {len(patients)} patients")
            masked = patients[:k]
        elif budget.masks.fraction is not None:
            k = math.floor(Fraction(repr(float(budget.masks.fraction))) * len(patients) + Fraction(1, 2))
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _hash_int("budget.masks")])))
            pool = sorted(patients)
            masked = [pool[i] for i in rng.permutation(len(pool))[:k]]
    out = dict.fromkeys(masked, "masks")
    rest = sorted(p for p in patients if p not in out)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _hash_int("budget.rest")])))
    shuffled = [rest[i] for i in rng.permutation(len(rest))]
    start = 0
    for kind, n in _largest_remainder(len(rest), budget.rest).items():
        for p in shuffled[start:start + n]:
            out[p] = kind
        start += n
    return {p: out[p] for p in patients}


# --------------------------------------------------------------------------------------------------------------------
# whole data sets


def _check_label(item: SliceItem, num_classes: int, origin: str | Path) -> np.ndarray:
    if item.label is None:
        raise DataError(origin, f"item {item.item_id!r} has no mask: weak labels are simulated from masks")
    label = np.asarray(item.label)
    if label.ndim != 2:
        raise DataError(origin, f"item {item.item_id!r}: label must be 2D, got shape {label.shape}")
    if label.size and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise DataError(
            origin,
            f"item {item.item_id!r}: label holds classes {int(label.min())}..{int(label.max())} "
            f"but the data has {num_classes} classes",
        )
    return label


def _class_names(classes: Mapping[int, str], num_classes: int) -> dict[str, str]:
    names = {int(k): str(v) for k, v in classes.items() if int(k) != 0}
    for c in range(1, num_classes):
        names.setdefault(c, str(c))
    return {str(c): names[c] for c in sorted(names)}


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _budget_kinds(items: Sequence[SliceItem], plan: Budget, seed: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Each item's kind under ``plan``, and the provenance saying who got what (patients, or sparse slices)."""
    if plan.slices is not None:
        chosen = choose_slices(items, plan.slices, seed)
        picked = {i for ids in chosen.values() for i in ids}
        return {it.item_id: plan.slices.kind if it.item_id in picked else "unlabelled" for it in items}, \
            {"slices": chosen}
    by_patient = assign_patients(patient_order(items), plan, seed)
    used = [k for k in BUDGET_KINDS if k in set(by_patient.values())]
    return {it.item_id: by_patient[it.patient_id] for it in items}, \
        {"patients": {k: sorted(p for p, v in by_patient.items() if v == k) for k in used}}


@dataclass(frozen=True)
class _Request:
    """A simulation request that passed every check needing no data: one kind's options, or a budget."""

    kind: str
    seed: int
    options: Any = None
    """The kind's options record (``None`` with a budget, which carries its own)."""
    budget: Budget | None = None


def _check_request(kind: str, seed: object, budget: str | Path | Mapping[str, Any] | Budget | None,
                   options: Mapping[str, Any]) -> _Request:
    """Refuse an unknown kind, a bad seed or option, a budget with another kind or none with ``budget``.

    :func:`simulate_file` runs it before reading the data folder (a typo costs no read), and
    :func:`simulate_items` for callers that come with their items.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown simulation kind {kind!r} (known: {', '.join(KINDS)})")
    checked_seed = _check_seed(seed)
    if kind != "budget":
        if budget is not None:
            raise ConfigError(f"a budget (--budget) is only used with kind 'budget', not {kind!r}")
        return _Request(kind, checked_seed, options=_OPTIONS[kind].from_mapping(options, f"{kind} options"))
    if budget is None:
        raise ConfigError("kind 'budget' needs a budget file (--budget FILE)")
    if options:
        raise ConfigError("a budget carries its options in its own 'options' block; do not pass options")
    return _Request(kind, checked_seed, budget=load_budget(budget))


def _plan(items: Sequence[SliceItem], request: _Request) -> tuple[dict[str, str] | None, dict[str, Any],
                                                                   dict[str, Any]]:
    """Each item's kind, each kind's options, and the provenance that says so.

    One kind for every item (the kinds are then ``None``); or, under a budget, each item's kind from its
    patient (or its slice), the options of the kinds used, and who got what.
    """
    if request.budget is None:
        return None, {request.kind: request.options}, {"options": request.options.as_dict()}
    plan = request.budget
    kinds, who = _budget_kinds(items, plan, request.seed)
    used = [k for k in BUDGET_KINDS if k in set(kinds.values())]
    kind_options = {k: plan.kind_options(k) for k in used}
    recorded = {k: o.as_dict() for k, o in kind_options.items() if o is not None}
    return kinds, kind_options, {"budget": plan.as_dict(), "options": recorded, **who}


def _annotate(items: Sequence[SliceItem], kinds: Mapping[str, str] | None, kind_options: Mapping[str, Any],
              request: _Request, num_classes: int, origin: str | Path) -> tuple[dict[str, Item], dict[str, list[int]]]:
    """Every item's annotation (unlabelled ones get none), and the indices of the corrupted boxes by item.

    Each item draws from its own generator (:func:`item_rng`), so the order of ``items`` changes nothing.
    """
    out: dict[str, Item] = {}
    corrupted: dict[str, list[int]] = {}
    for item in items:
        this = request.kind if kinds is None else kinds[item.item_id]
        if this == "unlabelled":
            continue
        if item.item_id in out:
            raise DataError(origin, f"item id {item.item_id!r} occurs twice")
        label = _check_label(item, num_classes, origin)
        out[item.item_id], bad = _simulate_one(this, label, item_rng(request.seed, item.item_id),
                                               kind_options[this], num_classes)
        if bad:
            corrupted[item.item_id] = bad
    return out, corrupted


def simulate_items(
    items: Sequence[SliceItem],
    classes: Mapping[int, str],
    num_classes: int,
    kind: str,
    seed: int,
    budget: str | Path | Mapping[str, Any] | Budget | None = None,
    origin: str | Path = "<data>",
    **options: Any,
) -> AnnotationFile:
    """Simulate an annotation file from the masks of ``items``.

    Args:
        items: 2D items with labels (the source's ``training_slices()``); their order only matters
            for ``masks.first_patients`` in a budget.
        classes: foreground class names by index (background 0 implicit).
        num_classes: number of classes including background; labels must lie in [0, num_classes).
        kind: ``points``, ``scribbles``, ``boxes``, ``tags`` or ``budget``.
        seed: non-negative run seed.
        budget: for ``kind="budget"``: a budget file, a shipped budget's name, a mapping, or a :class:`Budget`.
        origin: what errors name as the data (the data folder).
        **options: the kind's options (:class:`PointOptions`, :class:`ScribbleOptions`, :class:`BoxOptions`);
            a budget carries its own per-kind options instead.

    Returns:
        The annotation file; items are keyed by id. Unlabelled patients of a budget get no item.

    Raises:
        ConfigError: unknown kind or option, bad budget, negative seed.
        DataError: an item that needs simulating has no label or a label out of range.
    """
    request = _check_request(kind, seed, budget, options)
    kinds, kind_options, planned = _plan(items, request)
    box_options = kind_options.get("boxes")
    if box_options is not None and box_options.corrupt_fraction and box_options.corruption != "shift" \
            and num_classes < 3:
        raise ConfigError(f"boxes: corruption {box_options.corruption!r} needs two foreground classes")
    out, corrupted = _annotate(items, kinds, kind_options, request, num_classes, origin)
    provenance = {"simulated_from": "masks", "simulator": SIMULATOR, "kind": kind, "seed": request.seed, **planned}
    if box_options is not None and box_options.corrupt_fraction:
        # Which boxes are wrong, so that an evaluation can compare them with the clean ones (never read to train).
        provenance["corrupted_boxes"] = dict(sorted(corrupted.items()))
    return AnnotationFile(classes=_class_names(classes, num_classes), items=out, provenance=provenance)


def simulate_file(
    data_root: str | Path,
    kind: str,
    seed: int,
    out: str | Path,
    overwrite: bool = False,
    budget: str | Path | Mapping[str, Any] | Budget | None = None,
    **options: Any,
) -> AnnotationFile:
    """``frugalseg simulate``: read a data folder, simulate ``kind`` from its training masks, write ``out``.

    Everything that can be refused is refused before the data is read: an existing
    ``out`` (unless ``overwrite``), an unknown kind or option, a bad budget file.

    Args:
        data_root: any supported source folder (recognised from its contents).
        kind: ``points``, ``scribbles``, ``boxes``, ``tags`` or ``budget``.
        seed: non-negative seed; the same seed gives the same file bytes.
        out: the annotation file to write.
        overwrite: replace an existing ``out``.
        budget: with ``kind="budget"``: a budget file or the name of a shipped one (``masks3_boxes_tags``).
        **options: the kind's options (see :func:`simulate_items`).

    Returns:
        The annotations written.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is false.
        ConfigError: bad kind, options, seed or budget.
        DataError: the data folder cannot be read or lacks masks.
    """
    out = _check_out(Path(out), overwrite)
    request = _check_request(kind, seed, budget, options)
    from frugalseg.data.sources import open_source

    source = open_source(data_root)
    items = source.training_slices()
    if not items:
        raise DataError(Path(data_root), "no training items to simulate from")
    ann = simulate_items(items, source.classes, source.num_classes, kind, seed, budget=request.budget,
                         origin=data_root, **options)
    save_annotations(ann, out, overwrite=overwrite)
    return ann


def _check_out(out: Path, overwrite: bool) -> Path:
    """Refuse an annotation file path that is a folder, exists (unless ``overwrite``) or lies inside a file."""
    if out.is_dir():
        raise OutputExistsError(out, "it is a folder; give --out the annotation file to write (e.g. clicks.json)")
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputExistsError(parent, f"it is a file, so {out} cannot be written inside it")
    return out
