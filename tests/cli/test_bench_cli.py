from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from frugalseg.bench import parallel
from frugalseg.bench.cost import cost_model_path
from frugalseg.bench.matrix import load_matrix, row_config
from frugalseg.cli import main
from tests.bench.fakes import FakeChildren, fake_record
from tests.helpers import sample_root

TINY = ["train.iterations=2", "train.batch_size=4", "data.patch_size=[64,64]", "model.features=[8,16,32,64,128]",
        "train.val_every=2", "train.checkpoint_every=2", "train.precision=off"]



# The rows of the papers' tables: the matrix the quick schedule was sized to train in 10 hours. The sparse-budget
# rows (docs/active-learning.md) came later and may take the whole matrix past it (--list says how to fit it).
PAPER_ROWS = ["supervised", "pce", "pscv", "supervised3", "mean_teacher3", "action3", "supervised7", "mean_teacher7",
              "action7", "dii_dcr", "mlds"]


def _matrix_hours(speedup: float, iterations: int | None = None) -> str:
    """The quick matrix's estimate by hand: Σ rows 3 seeds × (minutes / speedup + evaluation), in hours."""
    matrix = load_matrix()
    estimates = matrix.estimates
    extra = [f"train.iterations={iterations}"] if iterations else []
    minutes = [estimates.minutes_for(row_config(matrix.row(label), "/data/acdc", "quick", 0, extra))
               for label in PAPER_ROWS]
    return f"{3 * sum(m / speedup + estimates.eval_minutes for m in minutes) / 60:.1f} h"


def test_bench_list_prints_rows_and_estimate_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    assert main(["bench", "--list", "--runs", str(tmp_path)]) == 0
    rows = len(load_matrix().rows)
    assert f"{rows} rows x 3 seeds = {3 * rows} runs" in capsys.readouterr().out
    assert main(["bench", "--list", "--runs", str(tmp_path), "--only", *PAPER_ROWS]) == 0
    out = capsys.readouterr().out
    assert "11 rows x 3 seeds = 33 runs" in out and "dii_dcr" in out and "masks7, masks7_boxes" in out
    assert f"estimated wall time on the 2-core CPU: {_matrix_hours(1.0)}" in out
    assert "ways to fit" not in out  # the quick schedule fits the 10 hours as it is
    assert not any(tmp_path.iterdir())
    # at 4000 iterations it does not: the hints say how to fit it, each estimate on its own
    paper = ["bench", "--list", "--runs", str(tmp_path), "--only", *PAPER_ROWS]
    assert main([*paper, "--set", "train.iterations=4000"]) == 0
    out = capsys.readouterr().out
    hints = out[out.index("ways to fit it:"):].splitlines()[1:]
    assert hints[0].startswith("  --jobs 2   (2 runs side by side, 1 thread each, 1.2x the throughput") and \
        hints[0].endswith(f": {_matrix_hours(1.2, 4000)}")
    assert hints[1] == (f"  --set train.iterations=3500   (every row 3500 iterations instead of 4000): "
                        f"{_matrix_hours(1.0, 3500)}")
    assert hints[2].startswith("  --seeds 0 1   (2 seeds)")
    # at 5000 iterations even two jobs side by side do not fit: no --jobs hint
    assert main([*paper, "--set", "train.iterations=5000"]) == 0
    hints = capsys.readouterr().out.split("ways to fit it:")[1].splitlines()[1:]
    assert hints[0].startswith("  --set train.iterations=3500   (every row 3500 iterations instead of 5000)")
    assert main(["bench", "--list", "--schedule", "paper", "--only", "pce", "--seeds", "0"]) == 0
    assert "1 rows x 1 seeds = 1 runs" in capsys.readouterr().out


def test_bench_list_estimates_side_by_side_jobs(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    # training minutes / 1.2 (two single-thread runs side by side: 1.2x the images/s of one 2-thread run,
    # benchmarks/side_by_side.py) + 33 x 0.5 minutes of evaluation, counted in full
    assert main(["bench", "--list", "--runs", str(tmp_path), "--only", *PAPER_ROWS, "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"estimated wall time on the 2-core CPU with --jobs 2: {_matrix_hours(1.2)}" in out
    assert "ways to fit" not in out
    # more jobs than the 2 cores gain nothing more
    assert main(["bench", "--list", "--runs", str(tmp_path), "--only", *PAPER_ROWS, "--jobs", "4"]) == 0
    assert f"with --jobs 4: {_matrix_hours(1.2)}" in capsys.readouterr().out  # 2 cores: no more than --jobs 2
    with pytest.raises(SystemExit):
        main(["bench", "--list", "--jobs", "0"])
    assert "--jobs: 0 is not 1 or more" in capsys.readouterr().err


def test_bench_jobs_failure_is_reported_after_the_others_and_the_page(tmp_path, capsys, monkeypatch):
    """Fake children (no training): order, threads per child, one failure named at the end with its log."""
    children = FakeChildren(codes={"supervised s1": 1})
    monkeypatch.setattr(parallel, "spawn", children)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 4)
    runs, out = tmp_path / "runs", tmp_path / "docs"
    assert main(["bench", "--data", str(sample_root()), "--only", "supervised", "pce", "--seeds", "0", "1",
                 "--runs", str(runs), "--out", str(out), "--jobs", "2", "--set", "train.iterations=2"]) == 2
    assert children.order == ["supervised s0", "supervised s1", "pce s0", "pce s1"] and children.max_alive == 2
    assert {c.options["threads"] for c in children.launched} == {"2"}  # 4 CPUs / 2 jobs
    assert {c.env["OMP_NUM_THREADS"] for c in children.launched} == {"2"}
    assert all("--set=train.iterations=2" in c.command for c in children.launched)
    captured = capsys.readouterr()
    assert "training 4 runs, 2 at a time, 2 threads each" in captured.out
    assert sum(" started (worker " in ln for ln in captured.out.splitlines()) == 4
    assert "[supervised s1] FAILED" in captured.out and "RuntimeError: boom" in captured.out
    assert (out / "results.md").is_file()  # the page of the finished runs is written before the error
    log = runs / "logs" / "supervised-s1.out"
    assert f"1 run(s) failed, the others finished and {out / 'results.md'} shows them: supervised s1 " \
           f"(exit code 1; output in {log})" in captured.err
    assert "RuntimeError: boom" in log.read_text()


def test_bench_jobs_on_a_gpu_machine_needs_a_gpu_per_job(tmp_path, capsys, monkeypatch):
    import torch

    class OneGpu:
        @staticmethod
        def is_available() -> bool:
            return True

        @staticmethod
        def device_count() -> int:
            return 1

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch, "cuda", OneGpu)
    children = FakeChildren()
    monkeypatch.setattr(parallel, "spawn", children)
    args = ["bench", "--data", str(sample_root()), "--only", "pce", "--seeds", "0", "--runs", str(tmp_path / "r"),
            "--out", str(tmp_path / "docs"), "--jobs", "2"]
    assert main(args) == 2
    assert "--jobs 2: this machine has 1 GPU(s)" in capsys.readouterr().err
    assert children.launched == [] and not (tmp_path / "docs").exists()


def test_bench_unknown_row_or_missing_data_fails_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    assert main(["bench", "--list", "--only", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "--only", "pce", "--runs", str(tmp_path / "r"), "--out", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "r").exists()


def _outputs(docs: Path) -> dict[str, bytes]:
    """Every file of a results page (page, CSVs, figures) but the records, by path relative to ``docs``."""
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*"))
            if p.is_file() and "runs" not in p.relative_to(docs).parts}


def test_bench_end_to_end_on_the_sample_resumes(tmp_path, capsys, monkeypatch):
    import frugalseg.bench.provenance as provenance

    monkeypatch.setattr(provenance, "utc_now", lambda: "2026-01-01 00:00 UTC")  # pages written minutes apart
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
    # each run was recorded beside the page as soon as it was scored: small files, committed with the page
    records = tmp_path / "docs" / "results" / "runs"
    assert sorted(p.name for p in records.iterdir()) == ["pce-s0", "supervised-s0"]
    for record in records.iterdir():
        assert (record / "panel.npz").is_file() and (record / "eval_last" / "per_volume.csv").is_file()
        assert sum(f.stat().st_size for f in record.rglob("*") if f.is_file()) < 100_000
    assert "(results/runs)" in text and "results/runs/pce-s0" in (records.parent / "runs.csv").read_text()
    summary = tmp_path / "runs" / "pce-s0" / "summary.json"
    before = json.loads(summary.read_text())
    # a second invocation trains nothing and rewrites the page
    assert main(args) == 0
    assert "[pce s0] finished earlier: skipped" in capsys.readouterr().out
    assert json.loads(summary.read_text()) == before
    from_runs = _outputs(tmp_path / "docs")
    # a new session: the run folders are gone, the records were committed; nothing is trained, the same page
    shutil.rmtree(tmp_path / "runs")
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "[pce s0] finished earlier: skipped" in log and "trained in" not in log
    assert not (tmp_path / "runs" / "pce-s0").exists()
    assert _outputs(tmp_path / "docs") == from_runs
    # other settings: refused before anything is trained, naming the record and the key
    other = [a.replace("iterations=2", "iterations=4") for a in args]
    other[other.index("pce")] = "pscv"
    assert main(other) == 2
    err = capsys.readouterr().err
    assert f"record {records / 'supervised-s0'}" in err and "train.iterations" in err
    assert not (tmp_path / "runs" / "pscv-s0").exists()


def test_bench_page_from_committed_records_alone(tmp_path, capsys, monkeypatch):
    """Records of every row and no run folder: nothing is trained; tables, costs and panels come from the records
    (the panels' images from --data), and another cost model is applied to the recorded annotation counts."""
    import numpy as np

    import frugalseg.train as train
    from frugalseg.bench.figures import pick_slices
    from frugalseg.bench.matrix import load_matrix, row_config
    from frugalseg.bench.records import Panel
    from frugalseg.data.sources import open_source

    monkeypatch.setattr(train, "train_run", None)  # any training would fail
    data = sample_root()
    case = open_source(data).load_case("patient028_frame01")
    picks = pick_slices(case.label)
    panel = Panel(case.case_id, tuple(int(p) for p in picks), case.label[picks].astype(np.uint8))
    masks = {"format": "frugalseg.annotations/1", "classes": {"1": "RV", "2": "Myo", "3": "LV"},
             "items": {f"s{i}": {"mask": True} for i in range(10)}}
    docs = tmp_path / "docs"
    for k, row in enumerate(load_matrix().ordered_rows()):
        fake_record(docs / "results" / "runs", tmp_path / "runs", row.label, 0, 0.5 + k / 100,
                    row_config(row, data, "quick", 0).to_dict(), panel=panel, annotations=masks)
    assert not any((tmp_path / "runs").iterdir())
    args = ["bench", "--data", str(data), "--seeds", "0", "--runs", str(tmp_path / "runs"), "--out", str(docs)]
    assert main(args) == 0
    text = (docs / "results.md").read_text()
    assert "Not finished yet" not in text and "| supervised3 | supervised | baseline | 1 | 600 |" in text
    figures = sorted(p.name for p in (docs / "figures").iterdir())
    assert "results_dice_vs_cost.png" in figures and "results_predictions_masks3.png" in figures
    cheap = tmp_path / "cost.yaml"
    cheap.write_text(cost_model_path().read_text().replace("seconds: 20.0", "seconds: 40.0", 1))
    assert main([*args, "--cost-model", str(cheap)]) == 0
    assert "| supervised3 | supervised | baseline | 1 | 1,200 |" in (docs / "results.md").read_text()


def test_bench_jobs_2_end_to_end_on_the_sample(tmp_path, capsys):
    """Two real children train side by side; the runs are the rows' own (a --jobs 1 bench reuses them)."""
    runs, out = tmp_path / "runs", tmp_path / "docs"
    args = ["bench", "--data", str(sample_root()), "--only", "supervised", "pce", "--seeds", "0",
            "--runs", str(runs), "--out", str(out), *(f"--set={s}" for s in TINY)]
    assert main([*args, "--jobs", "2"]) == 0
    log = capsys.readouterr().out
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"training 2 runs, 2 at a time, {threads} thread" in log
    for row in ("supervised", "pce"):
        assert f"[{row} s0] started (worker" in log and f"[{row} s0] trained in" in log
        assert json.loads((runs / f"{row}-s0" / "config.json").read_text())["train"]["threads"] == threads
        assert f"[{row} s0] trained in" in (runs / "logs" / f"{row}-s0.out").read_text()  # the child's own line
        assert f"| {row} | {row} | " in (out / "results.md").read_text()
    # each child recorded its run
    assert sorted(p.name for p in (out / "results" / "runs").iterdir()) == ["pce-s0", "supervised-s0"]
    # the thread count is not a setting of the row: the same runs, one job at a time, are finished runs
    assert main(args) == 0
    assert "[supervised s0] finished earlier: skipped" in capsys.readouterr().out


def test_bench_page_only_trains_nothing_and_marks_the_rest_pending(tmp_path, capsys, monkeypatch):
    """Between the sessions of a long bench: the page of what is recorded, every other row pending."""
    import frugalseg.train as train
    from frugalseg.bench.matrix import load_matrix, row_config

    monkeypatch.setattr(train, "train_run", None)  # any training would fail
    data, docs = sample_root(), tmp_path / "docs"
    row = load_matrix().row("mlds")
    config = row_config(row, data, "quick", 0).to_dict()
    fake_record(docs / "results" / "runs", tmp_path / "runs", "mlds", 0, 0.6, config)
    args = ["bench", "--data", str(data), "--seeds", "0", "--runs", str(tmp_path / "runs"), "--out", str(docs),
            "--page-only"]
    assert main(args) == 0
    assert "--page-only: nothing is trained" in capsys.readouterr().out
    text = (docs / "results.md").read_text()
    assert "| mlds | mlds | method | 1 |" in text and "Not finished yet: supervised (0 of 1 seeds)" in text
    assert "trained by this invocation: 0 s" in text
