"""The bench's figures: Dice against annotation cost, and predictions of every method on the same slices.

Both take plain arrays and numbers (no run folders), so they are tested on fake data and reused by any
report. matplotlib runs on the Agg backend: the bench runs headless, in the background, over hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frugalseg.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

__all__ = ["CostPoint", "pick_slices", "plot_dice_vs_cost", "plot_prediction_panel", "spread_labels"]


@dataclass(frozen=True)
class CostPoint:
    """One row of the bench in the Dice-against-cost plane.

    Attributes:
        label: the row label written beside the point.
        method: the method (one colour per method).
        seconds, low, high: annotation cost of the row's annotation file and its range under the cost model.
        dice, dice_std: mean Dice over seeds and its std (``None`` for one seed).
    """

    label: str
    method: str
    seconds: float
    low: float
    high: float
    dice: float
    dice_std: float | None = None


def _pyplot():  # noqa: ANN202 (matplotlib.pyplot, imported lazily: most of the bench never draws)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_dice_vs_cost(points: Sequence[CostPoint], path: str | Path, title: str = "") -> Path:
    """Mean Dice (± std over seeds) against annotator-seconds on a log axis; the cost model's range as a bar.

    Raises:
        ValueError: no points.
    """
    if not points:
        raise ValueError("no rows to plot")
    plt = _pyplot()
    methods = list(dict.fromkeys(p.method for p in points))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for method in methods:
        pts = [p for p in points if p.method == method]
        x = np.array([p.seconds for p in pts])
        xerr = np.array([[p.seconds - p.low for p in pts], [p.high - p.seconds for p in pts]])
        yerr = np.array([p.dice_std or 0.0 for p in pts])
        ax.errorbar(x, [p.dice for p in pts], xerr=xerr, yerr=yerr, fmt="o", color=colours[method], capsize=3,
                    elinewidth=1, alpha=0.9, label=method)
    labels = [ax.annotate(p.label, (p.seconds, p.dice), textcoords="offset points", xytext=LABEL_OFFSET, fontsize=8)
              for p in points]
    ax.set_xscale("log")
    ax.set(xlabel="annotation cost (annotator-seconds, log scale; bars: the cost model's range)",
           ylabel="mean Dice (validation volumes; bars: std over seeds)", title=title or "Dice against annotation cost")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    for label, shift in zip(labels, spread_labels(labels), strict=True):
        if shift:  # a label moved off its point gets a thin line back to it
            ax.annotate("", label.xy, textcoords="offset points", xytext=label.xyann,
                        arrowprops={"arrowstyle": "-", "linewidth": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 3})
    return _save(fig, path)


LABEL_OFFSET = (5.0, 4.0)
"""Where a point's label goes, in points from the point (right and up)."""


def spread_labels(labels: Sequence[Annotation], step: float = 1.0, max_shift: float = 80.0) -> list[float]:
    """Move each label down until it overlaps no label placed before it, top label first; the shifts in points.

    The cost plane puts rows of one budget at nearly the same cost and Dice (``supervised7`` and
    ``mean_teacher_sparse``: 8,160 and 8,400 annotator-seconds, both 0.810), and labels at one fixed offset then
    print over each other. Labels are placed from the highest down, each moved by ``step`` points at a time
    (at most ``max_shift``) below the ones already placed that it would cover.
    """
    if not labels:
        return []
    figure = labels[0].figure
    assert figure is not None  # annotations made on an axes
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg canvas
    pixels_per_point = figure.dpi / 72
    boxes = [label.get_window_extent(renderer) for label in labels]
    placed: list[Bbox] = []
    shifts = [0.0] * len(labels)
    for i in sorted(range(len(labels)), key=lambda i: (-boxes[i].y0, boxes[i].x0)):
        shift = 0.0
        while shift < max_shift and any(boxes[i].translated(0, -shift * pixels_per_point).overlaps(b) for b in placed):
            shift += step
        x, y = labels[i].xyann
        labels[i].xyann = (x, y - shift)
        placed.append(boxes[i].translated(0, -shift * pixels_per_point))
        shifts[i] = shift
    return shifts


def pick_slices(label: np.ndarray, count: int = 4) -> np.ndarray:
    """``count`` slice indices spread evenly over the slices of a (Z, H, W) label volume that hold foreground.

    A volume without foreground gives evenly spread slices of the whole volume.
    """
    fg = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1))
    pool = fg if len(fg) else np.arange(label.shape[0])
    return pool[np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)]


def plot_prediction_panel(
    image: np.ndarray,
    reference: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
) -> Path:
    """A grid: one row per slice; columns image, reference, then one per prediction (all (S, H, W) arrays).

    Raises:
        ValueError: arrays of different shapes.
    """
    shapes = {image.shape, reference.shape, *(p.shape for p in predictions.values())}
    if len(shapes) != 1 or image.ndim != 3:
        raise ValueError(f"image, reference and predictions must share one (S, H, W) shape, got {sorted(shapes)}")
    plt = _pyplot()
    names = ["image", "reference", *predictions]
    rows, cols = image.shape[0], len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for r in range(rows):
        overlays = [None, reference[r], *(p[r] for p in predictions.values())]
        for c, lab in enumerate(overlays):
            ax = axes[r, c]
            ax.imshow(image[r], cmap="gray")
            if lab is not None:
                ax.imshow(np.ma.masked_equal(lab, 0), cmap="tab10", vmin=0, vmax=9, alpha=0.5, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(names[c], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:  # noqa: ANN001 (a matplotlib Figure)
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path
