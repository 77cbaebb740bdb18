from __future__ import annotations

import numpy as np
import pytest

from frugalseg.bench.figures import CostPoint, pick_slices, plot_dice_vs_cost, plot_prediction_panel

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
