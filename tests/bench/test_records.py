"""Run records: written whole or not at all, complete, small, read back; and the runner's use of them.

No training: runs are made by hand (``fakes.fake_run``) or by a stand-in trainer.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from frugalseg.bench import records as records_module
from frugalseg.bench.cost import load_cost_model, run_annotation_cost
from frugalseg.bench.matrix import parse_row, row_config
from frugalseg.bench.records import (
    RECORD_FORMAT,
    Panel,
    RecordError,
    has_record,
    mean_over_seeds,
    read_record,
    read_run,
    read_validation_log,
    record_dir,
    record_size,
    row_record_dirs,
    write_record,
)
from frugalseg.bench.runner import RunMismatchError, record_finished_run, train_and_record
from tests.bench.fakes import fake_record, fake_run
from tests.helpers import shipped_schedule

DATA = "/data/acdc"
ROW = parse_row("pce=acdc_pce")
MASKS = {"format": "frugalseg.annotations/1", "classes": {"1": "RV", "2": "Myo", "3": "LV"},
         "items": {f"s{i}": {"mask": True} for i in range(68)}}
META = {"label": "pce", "row": "acdc_pce", "seed": 0, "schedule": "quick", "data": DATA, "run": "runs/pce-s0",
        "written": "2026-01-01 00:00 UTC", "commit": "abc1234"}


def _config(seed=0, extra=()):
    return row_config(ROW, DATA, "quick", seed, extra).to_dict()


def _panel() -> Panel:
    rng = np.random.default_rng(0)
    return Panel("patient028_frame01", (2, 4, 6, 8), rng.integers(0, 4, (4, 256, 216)).astype(np.uint8))


def test_record_holds_the_runs_small_files_and_reads_back(tmp_path):
    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, train_seconds=321.0, config=_config(), annotations=MASKS,
                   best_dice=0.72)
    dest = write_record(run, record_dir(tmp_path / "records", "pce", 0), META, _panel())
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["config.json", "eval_best/per_volume.csv", "eval_best/summary.json", "eval_last/per_volume.csv",
                     "eval_last/summary.json", "panel.npz", "record.json", "summary.json"]
    for name in ("config.json", "summary.json", "eval_last/per_volume.csv", "eval_best/summary.json"):
        assert (dest / name).read_bytes() == (run / name).read_bytes()
    meta = json.loads((dest / "record.json").read_text())
    assert meta["format"] == RECORD_FORMAT and meta["label"] == "pce" and meta["seed"] == 0
    assert {"schedule", "data", "run", "written", "commit"} <= set(meta)
    assert meta["annotations"] == {"classes": 3, "masks": 68, "points": 0, "scribbles": 0, "boxes": 0, "tagged": 0,
                                   "annotated": 68}
    assert meta["panel"]["case"] == "patient028_frame01" and meta["panel"]["slices"] == [2, 4, 6, 8]
    # the cost model applied to the counts gives what it gives on the annotation file itself
    record, from_run = read_record(dest), read_run(run, "pce", 0)
    model = load_cost_model()
    assert record.counts == from_run.counts
    assert run_annotation_cost(run / "annotations.json", model).seconds == 68 * 3 * 20
    assert record.train_seconds == 321.0 and record.summaries == from_run.summaries
    assert record.summaries["best"]["overall"]["dice"]["mean"] == 0.72 and record.run == "runs/pce-s0"
    panel = record.panel()
    assert panel is not None and panel.labels.dtype == np.uint8 and np.array_equal(panel.labels, _panel().labels)
    # an ACDC-sized panel of random labels (the worst case for compression) still keeps the record small;
    # the annotation file (140 KB on the ACDC budgets) is not copied
    assert record_size(dest) < 100_000 and not (dest / "annotations.json").exists()
    assert [p.name for p in dest.parent.iterdir()] == ["pce-s0"]  # no temporary folder left


def test_the_validation_curve_is_kept_when_the_run_has_one(tmp_path):
    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config(), annotations=MASKS)
    bare = write_record(run, record_dir(tmp_path / "records", "pce", 0), META)
    assert read_record(bare).validation_curve() == []  # a record of before the curve was kept: no curve, no error
    (run / "val_log.csv").write_text("iteration,dice,hd95,dice_RV\n500,0.5,20.0,0.4\n1000,0.75,9.5,\n")
    dest = write_record(run, record_dir(tmp_path / "records", "pce", 1), {**META, "seed": 1})
    assert (dest / "val_log.csv").read_bytes() == (run / "val_log.csv").read_bytes()
    # an empty cell (a class not scored at that point) is left out, not read as 0
    assert read_record(dest).validation_curve() == [
        {"iteration": 500.0, "dice": 0.5, "hd95": 20.0, "dice_RV": 0.4},
        {"iteration": 1000.0, "dice": 0.75, "hd95": 9.5}]
    assert read_run(run, "pce", 0).validation_curve()[1]["dice"] == 0.75


@pytest.mark.parametrize("text, expected", [("iteration,dice\n500,high\n", "cannot read the validation curve"),
                                            ("iteration,hd95\n500,3.0\n", "needs the columns iteration and dice")])
def test_a_broken_validation_curve_is_refused_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "val_log.csv"
    path.write_text(text)
    with pytest.raises(RecordError, match=expected) as info:
        read_validation_log(path)
    assert str(path) in str(info.value)


def test_a_killed_writer_leaves_no_record(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config())
    dest = record_dir(tmp_path / "records", "pce", 0)
    calls = []

    def dies_on_the_third_file(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a Ctrl-C or a SIGTERM mid-copy
        shutil.copyfile(src, dst)

    monkeypatch.setattr(records_module, "_copy_synced", dies_on_the_third_file)
    with pytest.raises(KeyboardInterrupt):
        write_record(run, dest, META)
    assert not dest.exists() and not has_record(dest) and list(dest.parent.iterdir()) == []
    # a writer killed outright (SIGKILL) leaves its hidden temporary folder: not a record, and no obstacle
    leftover = dest.parent / f".{dest.name}.0123.tmp"
    shutil.copytree(run, leftover)
    (leftover / "record.json").write_text("{}")
    assert not has_record(dest)
    monkeypatch.undo()
    write_record(run, dest, META)
    assert has_record(dest) and read_record(dest).seed == 0


def test_an_incomplete_run_or_record_is_refused_naming_the_file(tmp_path):
    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config())
    (run / "eval_last" / "per_volume.csv").unlink()
    dest = record_dir(tmp_path / "records", "pce", 0)
    with pytest.raises(RecordError, match=r"cannot record this run, missing .*eval_last/per_volume.csv"):
        write_record(run, dest, META)
    assert not dest.exists()
    good = fake_record(tmp_path / "records", tmp_path / "runs2", "pce", 1, 0.7, _config(1))
    with pytest.raises(RecordError, match="a record exists already"):
        write_record(fake_run(tmp_path / "runs3", "pce", 1, 0.7, config=_config(1)), good, META)
    (good / "eval_best" / "summary.json").unlink()
    with pytest.raises(RecordError, match=r"incomplete record, missing .*eval_best/summary.json"):
        read_record(good)
    other = fake_record(tmp_path / "records", tmp_path / "runs4", "pce", 2, 0.7, _config(2))
    other.rename(tmp_path / "records" / "pscv-s2")  # a record copied by hand under another row's name
    with pytest.raises(RecordError, match=r"the record of 'pce' seed 2, found where the record of 'pscv' seed 2"):
        read_record(tmp_path / "records" / "pscv-s2", label="pscv", seed=2)
    meta = json.loads((good / "record.json").read_text())
    (good / "record.json").write_text(json.dumps({**meta, "format": "frugalseg.bench.record/99"}))
    with pytest.raises(RecordError, match=r"record.json: format 'frugalseg.bench.record/99'"):
        read_record(good)


def test_a_recorded_row_seed_is_not_trained_again_without_its_run_folder(tmp_path, trainer, no_eval):
    runs, records = tmp_path / "runs", tmp_path / "records"
    logged: list[str] = []
    assert train_and_record(ROW, 0, DATA, runs, records, log=logged.append)
    dest = records / "pce-s0"
    assert has_record(dest) and no_eval == ["best.pt", "last.pt"]
    assert any(line.startswith(f"[pce s0] recorded in {dest}") for line in logged)
    assert any("no prediction panel in the record" in line for line in logged)  # the stand-in saved no last.pt
    shutil.rmtree(runs)  # a new session: the machine was wiped, the committed record is all there is
    assert not train_and_record(ROW, 0, DATA, runs, records, log=logged.append)
    record = read_record(dest, label="pce", seed=0)
    assert len(trainer.calls) == 1 and no_eval == ["best.pt", "last.pt"] and not runs.exists()
    assert record.path == dest and record.train_seconds == 12.0 and record.summaries["last"]["overall"]


def test_a_finished_run_without_record_is_recorded_not_retrained(tmp_path, trainer, no_eval):
    """Runs trained by an older frugalseg (no records yet) are picked up: scored if needed, then recorded."""
    runs, records = tmp_path / "runs", tmp_path / "records"
    fake_run(runs, "pce", 0, 0.7, config=_config(), annotations=MASKS)
    (runs / "pce-s0" / "eval_best" / "summary.json").unlink()
    assert not train_and_record(ROW, 0, DATA, runs, records, log=lambda _: None)
    record = read_record(records / "pce-s0", label="pce", seed=0)
    assert trainer.calls == [] and no_eval == ["best.pt"]
    assert record.path == records / "pce-s0" and record.counts is not None and record.counts.masks == 68


def test_a_record_of_another_config_is_refused_naming_it(tmp_path, trainer):
    runs, records = tmp_path / "runs", tmp_path / "records"
    fake_record(records, runs, "pce", 0, 0.7, _config(extra=["train.iterations=1000"]))
    wanted = shipped_schedule("quick")["train.iterations"]
    with pytest.raises(RunMismatchError, match=f"train.iterations: run has 1000, row wants {wanted}") as err:
        train_and_record(ROW, 0, DATA, runs, records, log=lambda _: None)
    assert f"record {records / 'pce-s0'}" in str(err.value)
    assert trainer.calls == []


def test_a_finished_run_of_another_config_is_not_recorded(tmp_path, trainer):
    runs, records = tmp_path / "runs", tmp_path / "records"
    fake_run(runs, "pce", 0, 0.7, config=_config(extra=["train.iterations=1000"]))
    logged: list[str] = []
    assert record_finished_run(ROW, 0, DATA, runs, records, log=logged.append) is None
    assert not (records / "pce-s0").exists() and trainer.calls == []
    assert any("not recorded: trained with another config" in line for line in logged)


def test_only_the_methods_in_the_table_keep_method_state(tmp_path):
    """What a record keeps of a method's state is the bench's table, not the method's: others keep nothing."""
    from frugalseg.bench.records import RECORDED_METHOD_STATE, recorded_method_state
    from frugalseg.methods import get_method

    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config())  # no checkpoint: it is not even opened
    assert recorded_method_state(run) is None
    for name in RECORDED_METHOD_STATE:  # every name in the table is a registered method
        assert get_method(name).name == name
    (run / "config.json").write_text(json.dumps({"method": None}))
    with pytest.raises(RecordError, match="no method.name"):
        recorded_method_state(run)


def test_a_rows_records_are_its_whole_ones_in_seed_order_and_never_a_longer_rows(tmp_path):
    store = tmp_path / "records"
    for name in ("pce-s10", "pce-s2", "pce_3k-s0", "pce-sx", "pce-s3"):
        (store / name).mkdir(parents=True)
        if name != "pce-s3":  # pce-s3 is a folder without record.json: a record being written, or a killed one
            (store / name / "record.json").write_text("{}")
    assert [p.name for p in row_record_dirs(store, "pce")] == ["pce-s2", "pce-s10"]
    assert [p.name for p in row_record_dirs(store, "pce_3k")] == ["pce_3k-s0"]
    assert row_record_dirs(tmp_path / "none", "pce") == []


def test_mean_over_seeds_by_hand_at_the_common_iterations():
    curves = [[{"iteration": 500, "dice": 0.2, "hd95": 9.0}, {"iteration": 1000, "dice": 0.4, "hd95": 5.0}],
              [{"iteration": 500, "dice": 0.4}, {"iteration": 1000, "dice": 0.6}, {"iteration": 1500, "dice": 0.7}],
              []]  # a record without a curve is left out
    curve = mean_over_seeds(curves)
    assert curve.seeds == 2 and curve.iterations.tolist() == [500, 1000]
    assert list(curve.mean) == ["dice"]  # hd95 is not in every curve
    assert curve.mean["dice"].tolist() == pytest.approx([0.3, 0.5])
    assert curve.std["dice"].tolist() == pytest.approx([0.1414214, 0.1414214])
    one = mean_over_seeds(curves[1:2])
    assert one.seeds == 1 and one.std["dice"].tolist() == [0.0, 0.0, 0.0]
    assert mean_over_seeds([[], []]).seeds == 0


def test_the_run_folder_counts_as_the_same_run_only_with_the_recorded_config(tmp_path):
    run = fake_run(tmp_path / "runs", "pce", 0, 0.7, config=_config(), annotations=MASKS)
    dest = write_record(run, record_dir(tmp_path / "records", "pce", 0), {**META, "run": str(run)}, None)
    assert read_record(dest).same_run_folder() == run
    (run / "config.json").write_text(json.dumps(_config(seed=1)))  # a later training reused the folder
    assert read_record(dest).same_run_folder() is None
    shutil.rmtree(run)
    assert read_record(dest).same_run_folder() is None
