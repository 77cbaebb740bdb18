"""Reports: one CSV row per volume and class, a JSON summary, written atomically and never over a file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from frugalseg.errors import OutputExistsError
from frugalseg.evaluation.metrics import compute_volume_metrics, summarise
from frugalseg.evaluation.reports import CSV_COLUMNS, write_reports

CLASSES = {1: "RV", 2: "Myo", 3: "LV"}


@pytest.fixture()
def results():
    ref = np.zeros((2, 12, 12), np.uint8)
    ref[:, 2:6, 2:6], ref[:, 7:10, 7:10] = 1, 3
    pred = np.roll(ref, 1, axis=2)
    return [compute_volume_metrics(pred, ref, 4, case_id="v1"),
            compute_volume_metrics(ref, ref, 4, spacing=None, case_id="v2")]


def test_csv_and_json_hold_every_volume_and_the_summary(tmp_path, results):
    summary = summarise(results, CLASSES)
    csv_path, json_path = write_reports(results, summary, tmp_path / "out" / "per_volume.csv",
                                        tmp_path / "out" / "summary.json", CLASSES)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 6
    assert [(r["case_id"], r["class"]) for r in rows[:3]] == [("v1", "RV"), ("v1", "Myo"), ("v1", "LV")]
    assert float(rows[0]["dice"]) == pytest.approx(results[0].dice[0])
    assert rows[1]["pred_empty"] == "True" and rows[1]["units"] == "voxel"
    loaded = json.loads(json_path.read_text())
    assert loaded["n_volumes"] == 2 and loaded["units"] == "voxel"
    assert loaded["classes"]["LV"]["dice"]["mean"] == pytest.approx(summary["classes"]["LV"]["dice"]["mean"])
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["per_volume.csv", "summary.json"]


def test_nothing_is_written_when_either_output_exists(tmp_path, results):
    summary = summarise(results, CLASSES)
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        write_reports(results, summary, tmp_path / "per_volume.csv", tmp_path / "summary.json", CLASSES)
    assert not (tmp_path / "per_volume.csv").exists()
    write_reports(results, summary, tmp_path / "per_volume.csv", tmp_path / "summary.json", CLASSES, overwrite=True)
    assert json.loads((tmp_path / "summary.json").read_text())["n_volumes"] == 2
