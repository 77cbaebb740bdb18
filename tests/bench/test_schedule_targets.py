"""``scripts/schedule_targets.py``: issue #21's targets read from bench records, verdicts, curves and the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from frugalseg.bench.records import read_record, record_dir, write_record
from tests.bench.fakes import fake_run
from tests.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "schedule_targets.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def _record(store: Path, label: str, seed: int, dice: float, curve: list[float] | None = None,
            minutes: float = 15.0, keep_run: bool = False) -> Path:
    """A record of ``label`` seed ``seed`` whose last.pt scores ``dice``; ``curve``: val Dice every 500 it."""
    run = fake_run(store.parent / "runs", label, seed, dice, train_seconds=minutes * 60, config={"seed": seed})
    if curve is not None:
        lines = ["iteration,dice,hd95"] + [f"{500 * (k + 1)},{d},5.0" for k, d in enumerate(curve)]
        (run / "val_log.csv").write_text("\n".join(lines) + "\n")
    meta = {"label": label, "row": label, "seed": seed, "schedule": "quick", "data": "/d", "run": run.as_posix(),
            "written": "2026-12-06 00:00 UTC", "commit": "abc"}
    dest = write_record(run, record_dir(store, label, seed), meta)
    if not keep_run:
        shutil.rmtree(run)
    return dest


def test_verdicts_by_hand(script, tmp_path):
    store = tmp_path / "records"
    for seed, dice in enumerate((0.90, 0.89, 0.91)):
        _record(store, "supervised", seed, dice, minutes=18.0 + seed)
    for seed, dice in enumerate((0.78, 0.79)):
        _record(store, "supervised7", seed, dice)
    _record(store, "dii_dcr", 0, 0.8, minutes=46.0)
    rows = script.read_rows(store, ["supervised", "supervised7", "mean_teacher7", "dii_dcr"])
    assert [r.seed for r in rows["supervised"]] == [0, 1, 2] and "mean_teacher7" not in rows
    targets = {t.row + str(t.floor or t.above or t.max_minutes): t for t in script.TARGETS}
    assert script.verdict(targets["supervised0.89"], rows) == ("0.900 ± 0.010", "3", "met")
    # mean 0.785 against the floor 0.80: 0.015 short, on 2 seeds
    assert script.verdict(targets["supervised70.8"], rows) == (
        "0.785 ± 0.007", "2", "not met: 0.015 short; 1 of 3 seeds still to run")
    assert script.verdict(targets["mean_teacher7supervised7"], rows) == ("not run yet", "0", "open")
    # minutes: the slowest seed decides (20.0 <= 20), 19.0 ± 1.0 on average
    assert script.verdict(targets["supervised20.0"], rows) == (
        "19.0 ± 1.0 min beside another run (bench records)", "3", "met")
    # above the limit: the bench's minutes (two runs side by side) only bound a run alone from above
    assert script.verdict(targets["dii_dcr45.0"], rows)[2].startswith("open: above the limit beside another run")


def test_a_time_target_is_decided_by_the_minutes_alone_when_measured(script, tmp_path):
    store = tmp_path / "records"
    _record(store, "dii_dcr", 0, 0.8, minutes=70.0)  # beside another run, on a busy machine
    rows = script.read_rows(store, ["dii_dcr"])
    target = next(t for t in script.TARGETS if t.row == "dii_dcr")
    throughput = tmp_path / "throughput.json"
    throughput.write_text('{"smoke": false, "methods": {"supervised": {"run_minutes": 11.2}, '
                          '"dii_dcr": {"run_minutes": 43.25}}}')
    alone = script.read_alone_minutes(throughput)
    assert alone == {"supervised": 11.2, "dii_dcr": 43.25}
    assert script.verdict(target, rows, alone) == (
        "43.2 min alone (`method_throughput.py`); 70.0 min beside another run (bench records)", "1", "met")
    assert script.verdict(target, rows, {"dii_dcr": 46.0})[2] == "not met"
    # a run alone is measured without any bench record of the row
    assert script.verdict(target, {}, alone) == (
        "43.2 min alone (`method_throughput.py`); not run beside another run (bench records)", "0", "met")
    assert script.verdict(target, {}, {}) == ("not run yet", "0", "open")
    throughput.write_text('{"smoke": true, "methods": {"dii_dcr": {"run_minutes": 0.1}}}')
    assert script.read_alone_minutes(throughput) == {}  # the smoke mode measures nothing
    assert script.read_alone_minutes(tmp_path / "none.json") == {}


def test_a_comparison_gives_the_difference_of_the_means(script, tmp_path):
    store = tmp_path / "records"
    for seed, (teacher, student) in enumerate(((0.62, 0.60), (0.58, 0.57), (0.60, 0.60))):
        _record(store, "mean_teacher3", seed, teacher)
        _record(store, "supervised3", seed, student)
    rows = script.read_rows(store, ["mean_teacher3", "supervised3"])
    target = next(t for t in script.TARGETS if t.above == "supervised3")
    measured, seeds, word = script.verdict(target, rows)
    assert measured == "0.600 ± 0.020 against 0.590 ± 0.017 (+0.010)" and seeds == "3 + 3" and word == "met"


def test_curves_average_the_seeds_that_hold_one(script, tmp_path):
    store = tmp_path / "records"
    _record(store, "supervised3", 0, 0.5, curve=[0.2, 0.4, 0.45, 0.5, 0.52, 0.53, 0.54])
    _record(store, "supervised3", 1, 0.5, curve=[0.3, 0.5, 0.55, 0.6, 0.62, 0.63, 0.66])
    _record(store, "supervised3", 2, 0.5)  # a record of before the curves were kept
    rows = script.read_rows(store, ["supervised3"])
    curve = script.mean_curve(rows["supervised3"])
    assert curve.seeds == 2 and curve.iterations.tolist() == [500, 1000, 1500, 2000, 2500, 3000, 3500]
    assert curve.mean["dice"][0] == pytest.approx(0.25) and curve.std["dice"][0] == pytest.approx(0.0707107, abs=1e-6)
    # at 500, 1000, 2000, 3000; the end (0.60 at 3500) and its gain over the last 500 (0.60 - 0.58)
    assert script.curve_rows(script.mean_curves(rows)) == [
        "| supervised3 | 2 | 0.250 | 0.450 | 0.550 | 0.580 | 0.600 (3500) | +0.020 |"]


def test_backfill_copies_a_curve_only_from_the_same_run(script, tmp_path):
    store = tmp_path / "records"
    same = _record(store, "supervised", 0, 0.9, curve=[0.7, 0.8], keep_run=True)
    (same / "val_log.csv").unlink()  # as a record of before the curves were kept
    other = _record(store, "supervised", 1, 0.9, curve=[0.7, 0.8], keep_run=True)
    (other / "val_log.csv").unlink()
    run = Path(read_record(other).run)
    (run / "config.json").write_text('{"seed": 99}')  # the folder was reused by another run since
    said = []
    script.backfill_curves(store, ["supervised"], log=said.append)
    assert [p["dice"] for p in read_record(same).validation_curve()] == [0.7, 0.8]
    assert read_record(other).validation_curve() == [] and "holds another run" in said[-1]


def test_main_writes_its_block_and_figure(script, tmp_path):
    store, page, figure = tmp_path / "records", tmp_path / "performance.md", tmp_path / "figures" / "t.png"
    page.write_text("# Performance\n\nkept\n")
    _record(store, "supervised", 0, 0.9, curve=[0.7, 0.8, 0.85, 0.88, 0.89, 0.9, 0.9])
    _record(tmp_path / "old", "supervised", 0, 0.838)
    script.main(["--records", str(store), "--before", str(tmp_path / "old"), "--page", str(page),
                 "--figure", str(figure), "--throughput", str(tmp_path / "none.json")])
    text = page.read_text()
    assert text.startswith("# Performance\n\nkept\n") and text.count("<!-- schedule_targets -->") == 2
    assert "| supervised, all masks: Dice >= 0.89 | 0.900 | 1 | met; 2 of 3 seeds still to run | 0.838 |" in text
    assert "| supervised | 1 | 0.700 | 0.800 | 0.880 | 0.900 | 0.900 (3500) | +0.000 |" in text
    assert figure.stat().st_size > 10_000
    script.main(["--records", str(store), "--before", str(tmp_path / "old"), "--page", str(page),
                 "--figure", str(figure), "--throughput", str(tmp_path / "none.json")])
    assert page.read_text() == text  # written again, the block replaces itself
