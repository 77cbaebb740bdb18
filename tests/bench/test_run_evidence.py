"""``frugalseg.bench.run_evidence``: what a script measured in a run folder is kept beside the records.

Run folders do not outlive the machine that trained them, so a page's block must be rebuilt from what is
committed: the kept measurement of a record, read back without its run folder, and measured again only when
the record was written again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from frugalseg.bench.records import read_record
from frugalseg.bench.run_evidence import evidence_path, measured_runs
from tests.bench.fakes import fake_record


def _store(tmp_path: Path, seeds: int = 2) -> Path:
    store = tmp_path / "docs" / "results" / "runs"
    for seed in range(seeds):
        fake_record(store, tmp_path / "runs", "row", seed, 0.5 + seed / 10, config={"seed": seed}, keep_run=True)
    return store


def test_measured_once_then_read_back_without_the_run_folder(tmp_path):
    store = _store(tmp_path)
    calls = []

    def measure(record, run):
        calls.append((record.seed, run.name))
        return {"value": record.seed * 2}

    first = [(row, record.seed, got) for row, record, got in measured_runs(store, ["row"], "kind", measure)]
    assert first == [("row", 0, {"value": 0}), ("row", 1, {"value": 2})]
    assert calls == [(0, "row-s0"), (1, "row-s1")]  # measured in each record's own run folder
    kept = tmp_path / "docs" / "results" / "evidence" / "kind" / "row-s1.json"
    assert evidence_path(store, "kind", read_record(store / "row-s1")) == kept
    assert json.loads(kept.read_text())["measured"] == {"value": 2}
    shutil.rmtree(tmp_path / "runs")  # a new machine: the run folders are gone, the records and evidence kept
    again = [(row, record.seed, got) for row, record, got in measured_runs(store, ["row"], "kind", measure)]
    assert again == first and len(calls) == 2


def test_a_record_written_again_is_measured_again(tmp_path):
    store = _store(tmp_path, seeds=1)
    list(measured_runs(store, ["row"], "kind", lambda record, run: {"value": 1}))
    record = store / "row-s0" / "record.json"
    meta = json.loads(record.read_text())
    record.write_text(json.dumps({**meta, "written": "2026-02-02 00:00 UTC"}))  # the row trained and recorded again
    got = [m for _, _, m in measured_runs(store, ["row"], "kind", lambda record, run: {"value": 2})]
    assert got == [{"value": 2}]
    shutil.rmtree(tmp_path / "runs")
    record.write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="nothing of it is kept in .* and its run folder .* is gone"):
        list(measured_runs(store, ["row"], "kind", lambda record, run: {"value": 3}))
