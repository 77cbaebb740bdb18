"""Skeleton scribbles of one slice (WSL4MIS protocol): a random walk on each eroded component's skeleton."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from frugalseg.data.annotations import Scribble
from frugalseg.data.simulate.marks import EIGHT_CONNECTED, classes_present
from frugalseg.data.simulate.options import ScribbleOptions


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
            eroded = ndimage.binary_erosion(crop, structure=EIGHT_CONNECTED, iterations=it)
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
    comp, n = ndimage.label(skeleton, structure=EIGHT_CONNECTED)
    sizes = np.bincount(comp.reshape(-1), minlength=n + 1)
    largest = int(np.argmax(sizes[1:])) + 1
    path = np.zeros_like(crop, dtype=bool)
    for k in range(1, n + 1):
        if k == largest or sizes[k] > opts.min_branch:
            _walk(skeleton, comp == k, rng, path)
    if opts.dilation:
        path = ndimage.binary_dilation(path, structure=EIGHT_CONNECTED, iterations=opts.dilation)
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
    for c in classes_present(label):
        if c == 0 and not options.include_background:
            continue
        mask = _scribble_mask(label == c, c, rng, options)
        if mask.any():
            scribbles.append(Scribble.model_validate({"class": c, "path": np.argwhere(mask).tolist()}))
    return scribbles
