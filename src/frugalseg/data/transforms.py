"""Geometric augmentation and resizing that move an image and its constraints together.

The recipe is SSL4MIS/WSL4MIS ``RandomGenerator`` (``dataloaders/dataset.py``): with
probability 0.5 a random ``rot90`` (k in 0..3) followed by a flip along a random axis; otherwise,
with probability 0.5, a rotation by an angle uniform in [-20°, 20°); then a resize of the slice to
the network's input size. We compose all of it into *one* affine map and sample once with
``torch.nn.functional.grid_sample``: bilinear for the image, nearest for every label-like map
(candidates, masks, box masks), so that no class is ever blended into another. Pixels that come
from outside the slice (the corners of a rotation) get image 0, candidates "anything" and label -1.

Clicks and scribble pixels are moved as coordinates, not sampled: each is mapped forward to the
output grid and drawn on the output pixel it falls in, so a click survives a down-sampling that a
nearest-neighbour warp would delete it in, and lands on the output pixel whose centre is nearest
to it (``tests/data/test_dataset.py`` checks it stays on its organ).

Random crops (``data.crop_size``). The slice is first brought to the network's *grid* (the paper's 256x256,
``data.patch_size``) and a window of the crop size is cut from that grid at an offset drawn per item; the
window is one more affine factor of the same map, so a crop costs no extra resampling and inference still
sees whole slices on the grid. What a crop does to each annotation follows from the map: a mask, box or
candidate map is cut with the image (a box is clipped to the window), a click outside the window is dropped
(``keep``), and :func:`points_inside` tells whether a box lies wholly inside the window.

Everything is a pure function of the slice and a seed, so a batch is reproducible from
(seed, iteration) alone and a resumed run sees the very same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the SSL4MIS recipe: ``rot90`` quarter turns, an optional flip axis, a rotation angle."""

    quarter_turns: int = 0
    flip_axis: int | None = None
    degrees: float = 0.0
    crop_yx: tuple[int, int] | None = None
    crop_hw: tuple[int, int] | None = None

    def with_crop(self, rng: np.random.Generator | None, grid_hw: tuple[int, int],
                  crop_hw: tuple[int, int]) -> AugmentParams:
        """These params and a ``crop_hw`` window of the ``grid_hw`` output at a random offset (centred without rng).

        The offset is drawn after the geometry, so a run without crops draws exactly what it drew before.

        Raises:
            ValueError: a crop larger than the grid.
        """
        (gh, gw), (ch, cw) = grid_hw, crop_hw
        if ch > gh or cw > gw:
            raise ValueError(f"crop {crop_hw} is larger than the grid {grid_hw}")
        if rng is None:
            y0, x0 = (gh - ch) // 2, (gw - cw) // 2
        else:
            y0, x0 = int(rng.integers(0, gh - ch + 1)), int(rng.integers(0, gw - cw + 1))
        return replace(self, crop_yx=(y0, x0), crop_hw=(int(ch), int(cw)))

    def output_size(self, grid_hw: tuple[int, int]) -> tuple[int, int]:
        """The size of the warped output: the crop's when there is one, else the grid's."""
        return self.crop_hw if self.crop_hw is not None else (int(grid_hw[0]), int(grid_hw[1]))

    @classmethod
    def draw(cls, rng: np.random.Generator, max_degrees: float = 20.0) -> AugmentParams:
        """Draw like SSL4MIS ``RandomGenerator``: rot90+flip with p 0.5, else rotation with p 0.5."""
        if rng.random() > 0.5:
            return cls(quarter_turns=int(rng.integers(0, 4)), flip_axis=int(rng.integers(0, 2)))
        if rng.random() > 0.5:
            return cls(degrees=float(rng.uniform(-max_degrees, max_degrees)))
        return cls()


def _output_to_input(params: AugmentParams, in_hw: tuple[int, int]) -> np.ndarray:
    """3x3 matrix from output normalised coordinates (x, y in [-1, 1]) to input normalised coordinates.

    ``rot90``, flips and the resize are exact in normalised coordinates (the output frame always
    spans the whole, possibly rotated, input frame, as ``scipy.ndimage.zoom`` after ``np.rot90``
    does). A free rotation is applied in pixel units, so it stays a rotation on a non-square slice.
    """
    h, w = in_hw
    m = np.eye(3)
    # input -> augmented: rot90 (counter-clockwise in array terms, as np.rot90), then the flip.
    k = params.quarter_turns % 4
    turn = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (x, y) -> (y, -x): np.rot90
    for _ in range(k):
        m = turn @ m
    if params.flip_axis is not None:
        flip = np.eye(3)
        flip[1 - params.flip_axis, 1 - params.flip_axis] = -1.0  # array axis 0 is y (row 1 here), axis 1 is x
        m = flip @ m
    # the rotated frame's size in pixels (rot90 by an odd k swaps height and width)
    rh, rw = (w, h) if k % 2 else (h, w)
    if params.degrees:
        a = math.radians(params.degrees)
        to_px = np.diag([rw / 2.0, rh / 2.0, 1.0])
        rot = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        m = np.linalg.inv(to_px) @ rot @ to_px @ m
    return np.linalg.inv(m)


def _crop_to_grid(params: AugmentParams, grid_hw: tuple[int, int]) -> np.ndarray:
    """3x3 matrix from the crop window's normalised coordinates to the grid's (identity without a crop).

    Along x: the window's pixel i is the grid's pixel x0 + i, i.e. ``u_grid = (cw / GW) u + (2 x0 + cw) / GW - 1``.
    """
    if params.crop_yx is None or params.crop_hw is None:
        return np.eye(3)
    (gh, gw), (y0, x0), (ch, cw) = grid_hw, params.crop_yx, params.crop_hw
    return np.array([[cw / gw, 0.0, (2.0 * x0 + cw) / gw - 1.0],
                     [0.0, ch / gh, (2.0 * y0 + ch) / gh - 1.0],
                     [0.0, 0.0, 1.0]])


def output_to_input(params: AugmentParams, in_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """3x3 matrix from the output's normalised coordinates (the crop window, or the whole grid) to the input's."""
    return _output_to_input(params, in_hw) @ _crop_to_grid(params, grid_hw)


def points_inside(
    yx: np.ndarray, params: AugmentParams, in_hw: tuple[int, int], grid_hw: tuple[int, int]
) -> np.ndarray:
    """(N,) bool: whether each input pixel (row, column) lands inside the output (the crop window, if any)."""
    matrix = output_to_input(params, in_hw, grid_hw)
    _, keep = _forward_points(np.asarray(yx, dtype=np.int64).reshape(-1, 2), np.linalg.inv(matrix), in_hw,
                              params.output_size(grid_hw))
    return keep.numpy()


def _grid(matrix: np.ndarray, out_hw: tuple[int, int]) -> Tensor:
    theta = torch.as_tensor(matrix[:2], dtype=torch.float32).unsqueeze(0)
    return F.affine_grid(theta, [1, 1, out_hw[0], out_hw[1]], align_corners=False)


@dataclass
class Warped:
    """The augmented tensors of one slice."""

    image: Tensor
    maps: Tensor
    sparse_yx: Tensor
    keep: Tensor


def warp(
    image: np.ndarray,
    maps: np.ndarray,
    map_fill: np.ndarray,
    sparse_yx: np.ndarray,
    out_hw: tuple[int, int],
    params: AugmentParams,
) -> Warped:
    """Apply ``params``, resize to the ``out_hw`` grid and cut the params' crop window from it, if any.

    Args:
        image: (H, W) float32.
        maps: (M, H, W) integer or bool label-like maps, sampled nearest.
        map_fill: (M,) value of each map outside the slice.
        sparse_yx: (N, 2) integer pixel coordinates (clicks, scribble pixels).
        out_hw: the grid the slice is resized to (the output size without a crop).
        params: the augmentation (and crop window).

    Returns:
        image (1, h, w) float32, maps (M, h, w) float32 (exact integers), the sparse points' output
        pixel coordinates (N, 2) and which of them landed inside the output (N,) bool; (h, w) is the
        crop's size when there is one.
    """
    h, w = image.shape
    grid_hw = (int(out_hw[0]), int(out_hw[1]))
    matrix = output_to_input(params, (h, w), grid_hw)
    out_hw = params.output_size(grid_hw)
    identity = params == AugmentParams() and (h, w) == tuple(out_hw)
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    mp = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    pts = torch.from_numpy(np.ascontiguousarray(sparse_yx, dtype=np.int64)).reshape(-1, 2)
    if identity:
        return Warped(img, mp, pts, torch.ones(len(pts), dtype=torch.bool))
    grid = _grid(matrix, out_hw)
    img_out = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    fill = torch.as_tensor(map_fill, dtype=torch.float32).view(-1, 1, 1)
    # sample (map - fill) with zero padding, add fill back: outside pixels take the fill value
    if len(mp):
        maps_out = F.grid_sample((mp - fill)[None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
        maps_out = maps_out + fill
    else:
        maps_out = mp.new_zeros((0, *out_hw))
    yx_out, keep = _forward_points(sparse_yx, np.linalg.inv(matrix), (h, w), out_hw)
    return Warped(img_out, maps_out, yx_out, keep)


def _forward_points(
    yx: np.ndarray, in_to_out: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Map pixel centres forward to the output grid and round to the pixel they fall in."""
    if len(yx) == 0:
        return torch.zeros((0, 2), dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
    h, w = in_hw
    oh, ow = out_hw
    # pixel centre -> normalised (align_corners=False): u = (2x + 1) / W - 1
    u = (2.0 * yx[:, 1] + 1.0) / w - 1.0
    v = (2.0 * yx[:, 0] + 1.0) / h - 1.0
    out = in_to_out @ np.stack([u, v, np.ones_like(u)])
    ox = np.floor((out[0] + 1.0) * ow / 2.0).astype(np.int64)
    oy = np.floor((out[1] + 1.0) * oh / 2.0).astype(np.int64)
    keep = (ox >= 0) & (ox < ow) & (oy >= 0) & (oy < oh)
    return torch.from_numpy(np.stack([oy, ox], axis=1)), torch.from_numpy(keep)


__all__ = ["AugmentParams", "Warped", "output_to_input", "points_inside", "warp"]
