"""``scripts/compare_methods.py`` on the bench core: same CLI, same folders, same tables as before, plus records."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from frugalseg.bench.matrix import parse_row, row_config
from tests.bench.fakes import FakeChildren, fake_record, fake_run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_methods.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(spec: str, seed: int, extra=()) -> dict:
    return row_config(parse_row(spec), "/data/acdc", "quick", seed, extra).to_dict()


def _fake_runs(runs: Path) -> None:
    for seed, dice in enumerate([0.80, 0.82, 0.78]):
        fake_run(runs, "pce", seed, dice, train_seconds=600, best_dice=dice + 0.01,
                 config=_config("pce=acdc_pce", seed))
    fake_run(runs, "pscv", 0, 0.75, train_seconds=700, config=_config("pscv=acdc_pscv", 0))


@pytest.fixture
def no_training(monkeypatch):
    """Any training attempt fails the test: every run here is finished or recorded."""
    import frugalseg.engine.trainer as engine

    def refuse(*_, **__):
        raise AssertionError("a finished or recorded run was trained again")

    monkeypatch.setattr(engine, "Trainer", refuse)


def test_finished_runs_are_reused_and_tabulated(compare, tmp_path, capsys, no_training):
    runs = tmp_path / "runs"
    _fake_runs(runs)
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
    # with --doc PAGE and no --records, the records go beside the page: <PAGE's folder>/records/<PAGE's stem>/
    assert sorted(p.name for p in (tmp_path / "records" / "page").iterdir()) == ["pce-s0", "pscv-s0"]
    assert f"Records of these runs: `{(tmp_path / 'records' / 'page').as_posix()}`." in text
    assert compare.main(["--data", "/data/acdc", "--runs", str(runs), "--row", "pce=acdc_pce"]) == 0
    captured = capsys.readouterr()
    assert "| pce | 3 | 0.800 ± 0.020 |" in captured.out  # last.pt over the three seeds
    assert "no --records (nor --doc)" in captured.err and "Records of these runs" not in captured.out


def test_records_carry_a_comparison_into_a_session_without_its_runs(compare, tmp_path, capsys, no_training):
    runs, records = tmp_path / "runs", tmp_path / "committed" / "records"
    _fake_runs(runs)
    args = ["--data", "/data/acdc", "--runs", str(runs), "--records", str(records), "--row", "pce=acdc_pce",
            "--seeds", "0", "1", "2"]
    assert compare.main(args) == 0
    first = capsys.readouterr().out
    assert sorted(p.name for p in records.iterdir()) == ["pce-s0", "pce-s1", "pce-s2"]
    shutil.rmtree(runs)  # the machine is wiped; the records were committed
    assert compare.main(args) == 0
    tables = first[first.index("**best.pt**"):]
    assert "| pce | 3 | 0.810 ± 0.020 |" in tables and capsys.readouterr().out.endswith(tables)
    # a record of other settings is refused, naming it, although run folders of other settings are only warned of
    record = records / "pce-s1"
    config = json.loads((record / "config.json").read_text())
    config["train"]["iterations"] = 1000
    (record / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=rf"pce seed 1: record {record} holds a run trained with another config"):
        compare.main(args)


def test_run_of_another_config_is_reused_with_a_warning_and_not_recorded(compare, tmp_path, capsys, no_training):
    runs = tmp_path / "runs"
    fake_run(runs, "pce", 0, 0.7, config=_config("pce=acdc_pce", 0, ["train.iterations=1000"]))
    assert compare.main(["--data", "/data/acdc", "--runs", str(runs), "--seeds", "0", "--row", "pce=acdc_pce",
                         "--records", str(tmp_path / "records")]) == 0
    out = capsys.readouterr().out
    assert "warning" in out and "train.iterations: run has 1000, row wants 2000" in out
    assert "| pce | 1 | 0.700 |" in out and not (tmp_path / "records" / "pce-s0").exists()


def test_bad_row_exits_with_its_text(compare):
    with pytest.raises(SystemExit, match="expected label=config"):
        compare.main(["--data", "/data/acdc", "--row", "acdc_pce"])


def test_jobs_train_the_unfinished_runs_side_by_side_then_tabulate(compare, tmp_path, capsys, monkeypatch,
                                                                   no_training):
    from frugalseg.bench import parallel

    runs, records = tmp_path / "runs", tmp_path / "records"
    fake_record(records, runs, "pce", 0, 0.80, config=_config("pce=acdc_pce", 0))  # recorded earlier: no job
    children = FakeChildren(polls={"pce s1": 3})

    def child_does_its_run(command, **kwargs):  # a child trains, scores and records its run
        child = children(command, **kwargs)
        label, spec = child.options["row"].split("=", 1)
        seed = int(child.options["seed"])
        fake_record(records, runs, label, seed, 0.70 + seed / 100, config=_config(f"{label}={spec}", seed))
        return child

    monkeypatch.setattr(parallel, "spawn", child_does_its_run)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    assert compare.main(["--data", "/data/acdc", "--runs", str(runs), "--records", str(records), "--seeds", "0", "1",
                         "--row", "pce=acdc_pce", "--row", "pscv=acdc_pscv", "--jobs", "2"]) == 0
    assert children.order == ["pce s1", "pscv s0", "pscv s1"] and children.max_alive == 2
    assert all(c.env["OMP_NUM_THREADS"] == "1" for c in children.launched)
    out = capsys.readouterr().out
    assert "| pce | 2 | 0.755 ± 0.064 |" in out and "| pscv | 2 | 0.705 ± 0.007 |" in out


def test_jobs_must_be_positive(compare):
    with pytest.raises(SystemExit):
        compare.main(["--data", "/data/acdc", "--row", "pce=acdc_pce", "--jobs", "0"])
