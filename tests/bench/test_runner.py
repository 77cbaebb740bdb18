from __future__ import annotations

import json

import pytest

from frugalseg.bench import runner
from frugalseg.bench.matrix import parse_row, row_config
from frugalseg.bench.runner import (
    RunMismatchError,
    config_differences,
    evaluate_run,
    load_record,
    train_and_record,
    train_or_skip,
)
from tests.bench.fakes import fake_run

DATA = "/data/acdc"
ROW = parse_row("pce=acdc_pce")


def _config(seed=0, extra=()):
    return row_config(ROW, DATA, "quick", seed, extra).to_dict()


def test_fresh_run_is_trained_from_scratch_into_label_seed(tmp_path, trainer):
    assert train_or_skip(ROW, 2, DATA, tmp_path, log=lambda _: None)
    assert trainer.calls == [{"seed": 2, "resume": False, "overwrite": True, "run_dir": tmp_path / "pce-s2"}]


def test_finished_run_is_skipped(tmp_path, trainer):
    fake_run(tmp_path, "pce", 0, 0.7, config=_config())
    assert not train_or_skip(ROW, 0, DATA, tmp_path, log=lambda _: None)
    assert trainer.calls == []


def test_killed_run_is_resumed(tmp_path, trainer):
    run = tmp_path / "pce-s1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / "config.json").write_text(json.dumps(_config(1)))
    assert train_or_skip(ROW, 1, DATA, tmp_path, log=lambda _: None)
    assert trainer.calls[0]["resume"] and not trainer.calls[0]["overwrite"]


def test_finished_run_of_another_config_is_refused(tmp_path, trainer):
    fake_run(tmp_path, "pce", 0, 0.7, config=_config(extra=["train.iterations=1000"]))
    with pytest.raises(RunMismatchError, match="train.iterations") as err:
        train_or_skip(ROW, 0, DATA, tmp_path)
    assert str(tmp_path / "pce-s0") in str(err.value)
    assert trainer.calls == []


def test_config_differences_ignores_bookkeeping_and_new_keys():
    wanted = _config()
    stored = json.loads(json.dumps(wanted))
    stored["name"] = "other"
    stored["schedules"] = {}
    stored["train"]["log_every"] = 1
    del stored["train"]["val_batch_size"]  # a key added to the schema after the run was trained
    stored["data"]["root"] = "/data/../data/acdc"
    assert config_differences(stored, wanted) == []
    stored["method"]["options"] = {"x": 1}
    assert config_differences(stored, wanted) == ["method.options: run has {'x': 1}, row wants {}"]


def test_config_differences_ignores_the_schedule_blocks_but_not_what_they_set():
    """A run trained when ``quick`` was 3000 iterations matches a row that pins 3000 on today's 2000."""
    wanted = _config()
    wanted["schedules"] = {"quick": {"train.iterations": 2000}}
    stored = json.loads(json.dumps(wanted))
    stored["schedules"] = {"quick": {"train.iterations": 3000}}
    assert config_differences(stored, wanted) == []
    stored["train"]["iterations"] = wanted["train"]["iterations"] + 1
    assert config_differences(stored, wanted) == [
        f"train.iterations: run has {stored['train']['iterations']}, row wants {wanted['train']['iterations']}"]


def test_evaluation_runs_only_where_missing(tmp_path, no_eval):
    run = fake_run(tmp_path, "pce", 0, 0.7)
    assert evaluate_run(run, DATA)["last"]["overall"]["dice"]["mean"] == 0.7
    assert no_eval == []
    (run / "eval_best" / "summary.json").unlink()
    summaries = evaluate_run(run, DATA)
    assert no_eval == ["best.pt"] and summaries["best"]["overall"]["dice"]["mean"] == 0.5


def test_records_of_finished_runs_only(tmp_path, trainer, no_eval):
    fake_run(tmp_path, "pce", 0, 0.7, train_seconds=321.0)
    record = load_record("pce", 0, tmp_path, DATA)
    assert record is not None and record.train_seconds == 321.0 and record.seed == 0
    assert record.per_volume_csv("last") == tmp_path / "pce-s0" / "eval_last" / "per_volume.csv"
    assert load_record("pce", 1, tmp_path, DATA) is None
    assert train_and_record(ROW, 1, DATA, tmp_path, log=lambda _: None)
    record = load_record("pce", 1, tmp_path, DATA)
    assert record is not None and record.train_seconds == 12.0 and no_eval == ["best.pt", "last.pt"]
    assert runner.finished(tmp_path / "pce-s1")
