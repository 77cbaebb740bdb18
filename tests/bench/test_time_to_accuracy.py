"""``benchmarks/time_to_accuracy.py``: its points, its axes, the page it writes, and one tiny run of every mode."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def tta(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("time_to_accuracy", BENCHMARKS / "time_to_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "time_to_accuracy", module)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, name: str, rows: list[tuple[int, float, float, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["recipe", "seed", "iteration", "train_wall_s", "train_cpu_s", "val_dice", "eval_wall_s",
                         "load1"])
        for it, wall, cpu, dice in rows:
            writer.writerow([name.split("-s")[0], name.rsplit("-s", 1)[1], it, wall, cpu, dice, 1.0, 3.0])


def test_points_end_at_the_last_iteration(tta):
    assert tta.points(2000, 500) == [500, 1000, 1500, 2000]
    assert tta.points(1300, 500) == [500, 1000, 1300]


def test_every_recipe_is_a_valid_config(tta):
    for name in tta.RECIPES:
        cfg = tta.recipe_config("acdc_supervised", "quick", name, ".")
        assert cfg.train.batch_size == 8


def test_page_averages_seeds_and_uses_the_calibrated_axis(tta, tmp_path):
    results = tmp_path / "results"
    _write(results, "quick-s0", [(500, 120.0, 200.0, 0.5), (1000, 240.0, 400.0, 0.7)])
    _write(results, "quick-s1", [(500, 100.0, 180.0, 0.6), (1000, 200.0, 360.0, 0.8)])
    runs = tta.read_curves(results)["quick"]
    mean = tta.mean_curve(runs)
    assert [r["iteration"] for r in mean] == [500, 1000]
    assert [r["val_dice"] for r in mean] == pytest.approx([0.55, 0.75])
    assert tta.minutes(mean, "quick", None) == pytest.approx([190 / 60, 380 / 60])  # measured CPU minutes
    calibration = {"seconds_per_iteration": {"quick": 0.24}, "steps": 40, "threads": 2, "measured": "now",
                   "machine": "here", "load1_before": 0.5, "load1_after": 0.6}
    assert tta.minutes(mean, "quick", calibration) == pytest.approx([2.0, 4.0])  # 500 x 0.24 s = 2 min
    page = tmp_path / "performance.md"
    tta.write_page(page, results, tmp_path / "fig.png")
    assert "process CPU minutes" in page.read_text() and (tmp_path / "fig.png").is_file()
    (results / "calibration.json").write_text(json.dumps(calibration))
    tta.write_page(page, results, tmp_path / "fig.png")
    text = page.read_text()
    assert text.count("<!-- time_to_accuracy -->") == 2 and "`--calibrate 40`" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| quick |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    # seeds, iterations, s/it, minutes at the end (1000 x 0.24 s), wall and CPU minutes, load, end, best
    assert cells[2:] == ["2", "1000", "0.240", "4.0", "3.7", "6.3", "3.0", "0.750", "0.750 (1000)"]


def test_bench_records_give_the_shipped_schedule_on_the_calibrated_axis_only(tta, tmp_path):
    results, records = tmp_path / "results", tmp_path / "runs"
    _write(results, "quick-s0", [(500, 120.0, 200.0, 0.5), (1000, 240.0, 400.0, 0.7)])
    for seed, dice in ((0, 0.80), (1, 0.90)):
        run = records / f"supervised-s{seed}"
        run.mkdir(parents=True)
        (run / "val_log.csv").write_text(f"iteration,dice,hd95\n500,{dice - 0.2},3.0\n3500,{dice},1.0\n")
        (run / "record.json").write_text("{}")
    (records / "supervised7-s0").mkdir()  # a record without a curve adds nothing
    (records / "supervised7-s0" / "record.json").write_text("{}")
    curves = tta.record_curves(records)
    assert list(curves) == ["chosen"] and len(curves["chosen"]) == 2
    page, figure = tmp_path / "performance.md", tmp_path / "fig.png"
    tta.write_page(page, results, figure, records)  # no calibration: CPU minutes, which a record lacks
    assert "| chosen |" not in page.read_text()
    calibration = {"seconds_per_iteration": {"quick": 0.24, "chosen": 0.2}, "steps": 40, "threads": 2,
                   "measured": "now", "machine": "here", "load1_before": 0.5, "load1_after": 0.6}
    (results / "calibration.json").write_text(json.dumps(calibration))
    tta.write_page(page, results, figure, records)
    text = page.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| chosen |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    # 2 seeds, 3500 it x 0.2 s = 11.7 min, no measured times, mean Dice 0.85 at the end and 0.65 at 500
    assert cells[2:] == ["2", "3500", "0.200", "11.7", "n/a", "n/a", "n/a", "0.850", "0.850 (3500)"]
    assert "row `supervised`, 2 seed(s)" in text


@pytest.mark.slow
def test_smoke_runs_every_mode(tta, capsys):
    tta.main(["--smoke"])
    out = capsys.readouterr().out
    assert "s/iteration" in out and "| quick |" in out and "s / it (calibrated)" in out
