from __future__ import annotations

import numpy as np
import pytest

from frugalseg.bench.figures import CostPoint, pick_slices, plot_dice_vs_cost, plot_prediction_panel, spread_labels

PNG = b"\x89PNG\r\n\x1a\n"


def test_dice_vs_cost_writes_a_png(tmp_path):
    points = [CostPoint("supervised", "supervised", 78720, 59040, 314880, 0.88, 0.01),
              CostPoint("pce", "pce", 11000, 6600, 13200, 0.67, 0.012),
              CostPoint("pscv", "pscv", 11000, 6600, 13200, 0.66, None)]
    path = plot_dice_vs_cost(points, tmp_path / "fig" / "cost.png")
    assert path.read_bytes().startswith(PNG)
    assert [p.name for p in (tmp_path / "fig").iterdir()] == ["cost.png"]  # no temporary file left
    with pytest.raises(ValueError):
        plot_dice_vs_cost([], tmp_path / "none.png")


def test_labels_of_nearby_points_are_spread_apart():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set(xlim=(0, 10), ylim=(0, 1))
    # two rows at nearly the same place (as supervised7 and mean_teacher_sparse), one far away
    xy = [(5.0, 0.8100), (5.1, 0.8105), (1.0, 0.2)]
    labels = [ax.annotate(name, p, textcoords="offset points", xytext=(5, 4), fontsize=8)
              for name, p in zip(["supervised7", "mean_teacher_sparse", "pce"], xy, strict=True)]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    before = [t.get_window_extent(renderer) for t in labels]
    assert before[0].overlaps(before[1])  # the case to mend
    shifts = spread_labels(labels)
    after = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(after) for b in after[i + 1:])
    assert shifts[2] == 0 and sum(s > 0 for s in shifts[:2]) == 1  # only one of the pair moves, and only down
    moved = 0 if shifts[0] else 1
    assert after[moved].y1 <= after[1 - moved].y0 + 1e-6 and after[moved].x0 == before[moved].x0
    assert spread_labels([]) == []
    plt.close(fig)


def test_prediction_panel_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((3, 32, 32)).astype(np.float32)
    ref = rng.integers(0, 4, (3, 32, 32))
    path = plot_prediction_panel(image, ref, {"a": ref, "b": np.zeros_like(ref)}, tmp_path / "p.png", title="t")
    assert path.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="shape"):
        plot_prediction_panel(image, ref, {"a": ref[:2]}, tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()


def test_pick_slices_spreads_over_foreground():
    label = np.zeros((10, 4, 4), dtype=np.int64)
    label[2:9, 1, 1] = 1  # foreground on slices 2..8
    assert pick_slices(label, 4).tolist() == [2, 4, 6, 8]
    assert pick_slices(label, 20).tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert pick_slices(np.zeros((5, 2, 2)), 2).tolist() == [0, 4]
