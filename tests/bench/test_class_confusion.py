"""``scripts/class_confusion.py``: where each true class's voxels go, per bench row, onto a page.

The counting is checked by hand and, end to end, on a tiny run of the bundled sample against ``frugalseg eval``
of the same checkpoint; the page is built from kept counts (what a first call leaves beside the records).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frugalseg.bench.records import read_record
from frugalseg.bench.run_evidence import write_evidence
from frugalseg.cli import main
from frugalseg.evaluation.checkpoint import evaluate_checkpoint
from tests.bench.fakes import fake_record
from tests.helpers import load_script, sample_root

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "class_confusion.py"
CLASSES = ["background", "RV", "Myo", "LV"]


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def test_counts_by_hand(script):
    label = np.array([[0, 0, 1], [2, 3, 3]])
    pred = np.array([[0, 1, 1], [0, 2, 3]])
    counts = script.confusion_counts(pred, label, 4)
    # truth 0: predicted 0 once, 1 once; truth 1: 1; truth 2: 0; truth 3: 2 once, 3 once
    assert counts.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]]
    with pytest.raises(ValueError, match="differ in shape"):
        script.confusion_counts(pred[:1], label, 4)


def _store(tmp_path: Path, row: str, counts: list[list[list[int]]], dice: float) -> Path:
    """Records of ``row`` (run folders gone) whose counts are kept beside them (one 4x4 matrix per seed)."""
    store = tmp_path / "records"
    for seed, matrix in enumerate(counts):
        record = read_record(fake_record(store, tmp_path / "runs", row, seed, dice, config={"seed": seed}))
        write_evidence(store, "class_confusion", record, {"classes": CLASSES, "counts": matrix, "dice": dice})
    return store


def test_shares_by_hand_on_the_page(script, tmp_path):
    eye = np.eye(4, dtype=int) * 10
    lv_as_myo = eye.copy()
    lv_as_myo[3] = [0, 0, 6, 4]  # 60 % of the LV called myocardium
    store = _store(tmp_path, "medsam_boxes", [eye.tolist(), lv_as_myo.tolist()], 0.6)
    page = tmp_path / "page.md"
    page.write_text("# P\n\n<!-- class_confusion -->\nold\n<!-- class_confusion -->\n\nafter\n")
    script.main(["--data", "/d", "--page", str(page), "--records", str(store), "--rows", "medsam_boxes"])
    text = page.read_text()
    assert "old" not in text and text.endswith("\nafter\n")
    lv = next(line for line in text.splitlines() if line.startswith("| medsam_boxes | 2 | LV |"))
    # Myo share 0 and 0.6: mean 0.300, sample std 0.424; LV share 1 and 0.4: mean 0.700, std 0.424
    assert lv == "| medsam_boxes | 2 | LV | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.300 ± 0.424 | 0.700 ± 0.424 |"
    assert "| → background | → RV | → Myo | → LV |" in text


def test_predictions_that_disagree_with_the_record_stop_the_script(script, tmp_path, monkeypatch):
    store = tmp_path / "records"
    fake_record(store, tmp_path / "runs", "mlds", 0, 0.70, config={"seed": 0}, keep_run=True)
    made = {"classes": CLASSES, "counts": np.eye(4, dtype=int).tolist(), "dice": 0.65}
    monkeypatch.setattr(script, "predict_and_count", lambda checkpoint, data: made)
    with pytest.raises(SystemExit, match="its predictions score 0.6500, its record 0.7000"):
        script.measure(store, ["mlds"], "/d")
    assert not (tmp_path / "evidence").exists()  # nothing kept of a failed check


@pytest.mark.slow
def test_counts_cover_every_validation_voxel_and_score_as_eval(script, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "sample_supervised", f"data.root={sample_root()}", "train.iterations=2",
                 "train.batch_size=4", "data.patch_size=[32,32]", "train.val_every=100", "train.checkpoint_every=2",
                 "model.features=[4,8,16,32,64]", "--out", str(out), "--no-progress"]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    made = script.predict_and_count(ckpt, str(sample_root()))
    from frugalseg.data.sources import open_source

    source = open_source(sample_root())
    voxels = sum(source.load_case(c).label.size for c in source.case_ids("val"))
    counts = np.asarray(made["counts"])
    assert made["classes"] == CLASSES and counts.sum() == voxels
    labels = np.concatenate([source.load_case(c).label.ravel() for c in source.case_ids("val")])
    assert counts.sum(axis=1).tolist() == np.bincount(labels, minlength=4).tolist()  # rows: the reference
    scored = evaluate_checkpoint(ckpt, sample_root(), tmp_path / "eval", device="cpu")
    assert made["dice"] == pytest.approx(scored.summary["overall"]["dice"]["mean"], abs=1e-9)
