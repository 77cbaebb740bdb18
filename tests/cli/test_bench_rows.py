"""``frugalseg bench --row``: rows given on the command line (ablations, evidence runs), their tables printed and
written into a named block of a method page, their records in the one store every page reads.

Fake finished runs and records (``tests/bench/fakes.py``): nothing is trained or scored here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from frugalseg.bench.matrix import parse_row, row_config
from frugalseg.bench.method_block import written_blocks
from frugalseg.cli import main
from tests.bench.fakes import FakeChildren, fake_record, fake_run
from tests.helpers import shipped_schedule

DATA = "/data/acdc"
PAGE = "# Page\n\n<!-- results -->\nold\n<!-- results -->\n\nafter\n"


def _config(spec: str, seed: int, extra=()) -> dict:
    return row_config(parse_row(spec), DATA, "quick", seed, extra).to_dict()


def _fake_runs(runs: Path) -> None:
    for seed, dice in enumerate([0.80, 0.82, 0.78]):
        fake_run(runs, "pce", seed, dice, train_seconds=600, best_dice=dice + 0.01,
                 config=_config("pce=acdc_pce", seed))
    fake_run(runs, "pscv_t1", 0, 0.75, train_seconds=700,
             config=_config("pscv_t1=acdc_pscv,method.options.temperature=1", 0))


@pytest.fixture
def no_training(monkeypatch):
    """Any training attempt fails the test: every run here is finished or recorded."""
    import frugalseg.train as train

    def refuse(*_, **__):
        raise AssertionError("a finished or recorded run was trained again")

    monkeypatch.setattr(train, "train_run", refuse)


def _args(tmp_path: Path, *rows: str, seeds=("0",)) -> list[str]:
    return ["bench", "--data", DATA, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs"),
            "--seeds", *seeds, *(a for row in rows for a in ("--row", row))]


def test_rows_are_recorded_in_the_store_and_written_into_the_block(tmp_path, capsys, no_training):
    _fake_runs(tmp_path / "runs")
    page = tmp_path / "docs" / "methods" / "page.md"
    page.parent.mkdir(parents=True)
    page.write_text(PAGE)
    args = _args(tmp_path, "pce", "pscv_t1=acdc_pscv,method.options.temperature=1")  # pce: the matrix's row
    assert main([*args, "--doc", str(page), "--block", "results"]) == 0
    out = capsys.readouterr().out
    assert "| pce | 1 | 0.810 | 0.810 | 0.810 | 0.810 |" in out  # best.pt
    assert "| pscv_t1 | 1 | 0.750 |" in out and "Training seconds per run: pce 600, pscv_t1 700" in out
    text = page.read_text()
    assert "old" not in text and text.startswith("# Page\n\n<!-- results -->\nWritten by `frugalseg bench` on ")
    assert text.endswith("<!-- results -->\n\nafter\n") and "| pscv_t1 | 1 | 0.750 |" in text
    assert f"frugalseg bench --data {DATA} --runs" in text  # the command as typed
    [block] = written_blocks(text)  # what the pages-rebuild check reads back
    assert block.name == "results" and block.command.startswith(f"frugalseg bench --data {DATA} --runs")
    assert block.evidence[-1] == "Training seconds per run: pce 600, pscv_t1 700"
    assert any(line.startswith("| pscv_t1 | 1 | 0.750 |") for line in block.evidence)
    # the records went to the store beside the results page, linked relative to the method page
    store = tmp_path / "docs" / "results" / "runs"
    assert sorted(p.name for p in store.iterdir()) == ["pce-s0", "pscv_t1-s0"]
    assert f"Records of these runs: [`{store.as_posix()}`](../results/runs) (`<row>-s<seed>/`)." in text
    assert not (tmp_path / "docs" / "results.md").exists()  # the results page is the matrix's, not written here


def test_a_session_without_run_folders_rebuilds_the_block_from_records(tmp_path, capsys, no_training):
    runs, store = tmp_path / "runs", tmp_path / "docs" / "results" / "runs"
    _fake_runs(runs)
    args = _args(tmp_path, "pce=acdc_pce", seeds=("0", "1", "2"))
    assert main(args) == 0
    first = capsys.readouterr().out
    assert sorted(p.name for p in store.iterdir()) == ["pce-s0", "pce-s1", "pce-s2"]
    shutil.rmtree(runs)  # the machine is wiped; the records were committed
    assert main([*args, "--page-only"]) == 0
    again = capsys.readouterr().out
    tables = first[first.index("Validation volumes"):]
    assert "| pce | 3 | 0.800 ± 0.020 |" in tables and again.rstrip().endswith(tables.rstrip())
    # a record of other settings is refused before anything is done, naming it and the key
    record = store / "pce-s1"
    config = json.loads((record / "config.json").read_text())
    config["train"]["iterations"] = 1000
    (record / "config.json").write_text(json.dumps(config))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"record {record} holds a run trained with another config than its row" in err and "iterations" in err


def test_a_label_names_one_experiment_across_pages(tmp_path, capsys, no_training):
    """A row whose label the store already holds for another config is refused: pages cannot disagree."""
    fake_record(tmp_path / "docs" / "results" / "runs", tmp_path / "runs", "supervised3", 0, 0.5,
                config=_config("supervised3=acdc_supervised,data.simulate.kind=budget,data.simulate.budget=masks3", 0))
    spec = "supervised3=acdc_supervised,data.simulate.kind=budget,data.simulate.budget=masks3,train.iterations=3000"
    assert main(_args(tmp_path, spec)) == 2
    err = capsys.readouterr().err
    assert "supervised3-s0 holds a run trained with another config" in err
    assert f"train.iterations: run has {shipped_schedule('quick')['train.iterations']}, row wants 3000" in err
    # the matrix's own row of that label reads the same record
    assert main(_args(tmp_path, "supervised3")) == 0
    assert "| supervised3 | 1 | 0.500 |" in capsys.readouterr().out


def test_a_run_folder_of_another_config_is_refused_not_recorded(tmp_path, capsys, no_training):
    fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config("pce=acdc_pce", 0, ["train.iterations=1000"]))
    assert main(_args(tmp_path, "pce=acdc_pce")) == 2
    err = capsys.readouterr().err
    assert "was trained with another config than its row" in err and "train.iterations" in err
    assert not (tmp_path / "docs" / "results" / "runs" / "pce-s0").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--row", "acdc_pce"], "expected label=config[,key=value...] or a row of the matrix"),
    (["--row", "pce", "--only", "pce"], "--only selects rows of the matrix"),
    (["--row", "pce", "--row", "pce=acdc_pce,train.iterations=5"], "label pce given twice"),
    (["--row", "pce", "--doc", "page.md"], "--doc PAGE and --block NAME go together"),
    (["--doc", "page.md", "--block", "results"], "--doc: a method page shows rows given with --row"),
    (["--row", "pce", "--doc", "{open}", "--block", "results"], "opens a block that is never closed"),
])
def test_bad_rows_or_pages_fail_before_anything_is_written(tmp_path, capsys, no_training, extra, message):
    opened = tmp_path / "open.md"
    opened.write_text("# Page\n\n<!-- results -->\nno end\n")
    _fake_runs(tmp_path / "runs")
    args = ["bench", "--data", DATA, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs"),
            *(str(opened) if a == "{open}" else a for a in extra)]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "docs").exists() and opened.read_text().endswith("no end\n")


def test_rows_with_jobs_train_the_unfinished_runs_side_by_side(tmp_path, capsys, monkeypatch, no_training):
    from frugalseg.bench import parallel

    runs, store = tmp_path / "runs", tmp_path / "docs" / "results" / "runs"
    fake_record(store, runs, "pce", 0, 0.80, config=_config("pce=acdc_pce", 0))  # recorded earlier: no job
    children = FakeChildren(polls={"pce s1": 3})

    def child_does_its_run(command, **kwargs):  # a child trains, scores and records its run
        child = children(command, **kwargs)
        label, spec = child.options["row"].split("=", 1)
        seed = int(child.options["seed"])
        fake_record(store, runs, label, seed, 0.70 + seed / 100, config=_config(f"{label}={spec}", seed))
        return child

    monkeypatch.setattr(parallel, "spawn", child_does_its_run)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    assert main([*_args(tmp_path, "pce=acdc_pce", "pscv=acdc_pscv", seeds=("0", "1")), "--jobs", "2"]) == 0
    assert children.order == ["pce s1", "pscv s0", "pscv s1"] and children.max_alive == 2
    assert all(c.env["OMP_NUM_THREADS"] == "1" for c in children.launched)
    out = capsys.readouterr().out
    assert "| pce | 2 | 0.755 ± 0.064 |" in out and "| pscv | 2 | 0.705 ± 0.007 |" in out


def test_rows_page_only_lists_what_is_not_finished(tmp_path, capsys, no_training):
    fake_record(tmp_path / "docs" / "results" / "runs", tmp_path / "runs", "pce", 0, 0.8,
                config=_config("pce=acdc_pce", 0))
    assert main([*_args(tmp_path, "pce", "pce_noaug=acdc_pce,data.augment=false", seeds=("0", "1")),
                 "--page-only"]) == 0
    out = capsys.readouterr().out
    assert "--page-only: nothing is trained" in out and "| pce | 1 | 0.800 |" in out
    assert "Not finished yet: pce (1 of 2 seeds), pce_noaug (0 of 2 seeds)." in out
    assert "| pce_noaug |" not in out


def test_rows_list_their_plan(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FRUGALSEG_DATA", raising=False)
    assert main(["bench", "--list", "--runs", str(tmp_path), "--row", "action3_no_anco=acdc_action,"
                 "method.options.anco=false", "--row", "supervised3"]) == 0
    out = capsys.readouterr().out
    assert "2 rows x 3 seeds = 6 runs" in out
    assert "(--row): acdc_action,method.options.anco=false" in out and "masks3, masks3_boxes_tags: " in out
