from __future__ import annotations

import csv
import json

from frugalseg.cli import main
from tests.helpers import sample_root

TINY = ["train.iterations=2", "train.batch_size=4", "data.patch_size=[64,64]", "model.features=[8,16,32,64,128]",
        "train.val_every=2", "train.checkpoint_every=2", "train.precision=off"]


def test_bench_list_prints_rows_and_estimate_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    assert main(["bench", "--list", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "11 rows x 3 seeds = 33 runs" in out and "dii_dcr" in out and "masks7, masks7_boxes" in out
    assert "estimated wall time on the 2-core CPU: 7.8 h" in out
    assert "--set train.iterations=2000" in out and "--seeds 0 1" in out
    assert not any(tmp_path.iterdir())
    assert main(["bench", "--list", "--schedule", "paper", "--only", "pce", "--seeds", "0"]) == 0
    assert "1 rows x 1 seeds = 1 runs" in capsys.readouterr().out


def test_bench_unknown_row_or_missing_data_fails_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    assert main(["bench", "--list", "--only", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "--only", "pce", "--runs", str(tmp_path / "r"), "--out", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_bench_end_to_end_on_the_sample_resumes(tmp_path, capsys):
    out = tmp_path / "docs" / "results.md"
    args = ["bench", "--data", str(sample_root()), "--only", "supervised", "pce", "--seeds", "0",
            "--runs", str(tmp_path / "runs"), "--out", str(out.parent), *(f"--set={s}" for s in TINY)]
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "[supervised s0] trained" in log and "[pce s0] trained" in log
    text = out.read_text()
    assert text.startswith("# Results") and "`frugalseg bench`" in text
    assert f"frugalseg bench --data {sample_root()} --only supervised pce" in text  # the command as typed
    for row in ("supervised", "pce"):
        assert f"| {row} | {row} | " in text
    assert "Not finished yet: pscv (0 of 1 seeds)" in text
    figures = sorted(p.name for p in (tmp_path / "docs" / "figures").iterdir())
    assert figures == ["results_dice_vs_cost.png", "results_predictions_all_masks.png",
                       "results_predictions_points.png"]
    assert "(figures/results_dice_vs_cost.png)" in text and "(figures/results_predictions_points.png)" in text
    with (tmp_path / "docs" / "results" / "per_volume_last.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["row"] for r in rows} == {"supervised", "pce"} and {r["seed"] for r in rows} == {"0"}
    assert "(results/per_volume_last.csv)" in text
    summary = tmp_path / "runs" / "pce-s0" / "summary.json"
    before = json.loads(summary.read_text())
    # a second invocation trains nothing and rewrites the page
    assert main(args) == 0
    assert "[pce s0] finished earlier: skipped" in capsys.readouterr().out
    assert json.loads(summary.read_text()) == before
    # other settings into the same runs folder: refused before anything is trained, naming the run and the key
    other = [a.replace("iterations=2", "iterations=4") for a in args]
    other[other.index("pce")] = "pscv"
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "supervised-s0" in err and "train.iterations" in err and not (tmp_path / "runs" / "pscv-s0").exists()
