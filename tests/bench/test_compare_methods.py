"""``scripts/compare_methods.py`` on the bench core: same CLI, same folders, same tables as before."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from frugalseg.bench.matrix import parse_row, row_config
from tests.bench.fakes import fake_run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_methods.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finished_runs_are_reused_and_tabulated(compare, tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, dice in enumerate([0.80, 0.82, 0.78]):
        fake_run(runs, "pce", seed, dice, train_seconds=600, best_dice=dice + 0.01)
    fake_run(runs, "pscv", 0, 0.75, train_seconds=700)
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n<!-- results -->\nold\n<!-- results -->\n\nafter\n")
    rc = compare.main(["--data", "/data/acdc", "--runs", str(runs), "--seeds", "0", "--row", "pce=acdc_pce",
                       "--row", "pscv=acdc_pscv", "--doc", str(page), "--block", "results"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| pce | 1 | 0.810 | 0.810 | 0.810 | 0.810 |" in out  # best.pt
    assert "| pscv | 1 | 0.750 |" in out
    assert out.rstrip().endswith("Training seconds per run: pce 600, pscv 700")
    text = page.read_text()
    assert "old" not in text and text.endswith("after\n") and "Written by `scripts/compare_methods.py`" in text
    assert compare.main(["--data", "/data/acdc", "--runs", str(runs), "--row", "pce=acdc_pce"]) == 0
    assert "| pce | 3 | 0.800 ± 0.020 |" in capsys.readouterr().out  # last.pt over the three seeds


def test_run_of_another_config_is_reused_with_a_warning(compare, tmp_path, capsys):
    runs = tmp_path / "runs"
    other = row_config(parse_row("pce=acdc_pce"), "/data/acdc", "quick", 0, ["train.iterations=1000"]).to_dict()
    fake_run(runs, "pce", 0, 0.7, config=other)
    assert compare.main(["--data", "/data/acdc", "--runs", str(runs), "--seeds", "0", "--row", "pce=acdc_pce"]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "train.iterations: run has 1000, row wants 3000" in out


def test_bad_row_exits_with_its_text(compare):
    with pytest.raises(SystemExit, match="expected label=config"):
        compare.main(["--data", "/data/acdc", "--row", "acdc_pce"])
