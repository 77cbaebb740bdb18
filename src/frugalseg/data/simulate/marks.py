"""Clicks, tags and boxes of one slice, drawn from its mask; box corruption; one item of any kind."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from frugalseg.data.annotations import Box, Point
from frugalseg.data.simulate.options import BoxOptions, PointOptions

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def classes_present(label: np.ndarray) -> list[int]:
    """The class indices a label map holds, background included, in increasing order."""
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
    for c in classes_present(label):
        if c == 0 and not options.include_background:
            continue
        where = np.flatnonzero(flat == c)
        k = int(where[int(rng.integers(len(where)))])
        points.append(Point.model_validate({"class": c, "y": k // width, "x": k % width}))
    return points


def simulate_tags(label: np.ndarray) -> list[int]:
    """The foreground classes present in the slice, sorted (background is never tagged: it is always allowed)."""
    return [c for c in classes_present(label) if c != 0]


def simulate_boxes(label: np.ndarray, rng: np.random.Generator, options: BoxOptions | None = None) -> list[Box]:
    """The tight box (inclusive corners) of each connected component of each foreground class.

    Boxes come sorted by class, then by the component's first pixel in row-major order.
    """
    options = options or BoxOptions()
    h, w = label.shape
    structure = EIGHT_CONNECTED if options.connectivity == 8 else FOUR_CONNECTED
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
        raise ValueError(
            f"corruption {options.corruption!r} needs two foreground classes; the data has {num_classes - 1}"
        )
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
