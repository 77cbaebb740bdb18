"""``scripts/suggestion_positions.py``: where the loop's suggested slices lie in their stacks, what they hold.

The slice facts and the shares are checked by hand; the page block end to end on the bundled sample from
hand-made round records.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from frugalseg.bench.active_learning import RoundRecord, record_path
from frugalseg.data.sources import open_source
from frugalseg.data.types import SliceItem
from tests.helpers import load_script, sample_root

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "suggestion_positions.py"
CLASSES = ["RV", "Myo", "LV"]


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def _item(case: str, number: int, labels: list[int]) -> SliceItem:
    label = np.zeros((4, 4), dtype=np.uint8)
    label.flat[: len(labels)] = labels
    return SliceItem(f"{case}_slice_{number}", case, case, np.zeros((4, 4), np.float32), label)


def _record(strategy: str, seed: int, round_: int, suggested: list[str], dice: dict[str, float | None]) -> RoundRecord:
    summary = {"classes": {c: {"dice": {"mean": v}} for c, v in dice.items()}}
    return RoundRecord(strategy, seed, round_, [], suggested, None, {}, summary, 0.0, {})


def test_slice_facts_by_hand(script):
    # a stack of 5 (listed out of order) and one of 2: within 1 slice of an end is all but the 5-stack's middle
    items = [_item("a", 3, [1, 2, 3]), _item("a", 1, []), _item("a", 2, [3]), _item("a", 5, [2, 2]),
             _item("a", 4, [1, 3]), _item("b", 1, [1]), _item("b", 2, [])]
    facts = script.slice_facts(items, 4)
    assert {k: f.at_end for k, f in facts.items()} == {
        "a_slice_1": True, "a_slice_2": True, "a_slice_3": False, "a_slice_4": True, "a_slice_5": True,
        "b_slice_1": True, "b_slice_2": True}
    assert {k: f.classes_present for k, f in facts.items()} == {
        "a_slice_1": 0, "a_slice_2": 1, "a_slice_3": 3, "a_slice_4": 2, "a_slice_5": 1, "b_slice_1": 1, "b_slice_2": 0}


def test_block_shares_and_dice_by_hand(script):
    facts = {"x": script.SliceFacts(True, 3), "y": script.SliceFacts(False, 3), "z": script.SliceFacts(True, 0),
             "w": script.SliceFacts(False, 1)}
    records = [_record("random", 0, 0, ["y", "w"], {"RV": 0.5, "Myo": 0.6, "LV": 0.7}),
               _record("entropy", 0, 0, ["x", "z"], {"RV": 0.5, "Myo": 0.6, "LV": 0.7}),
               _record("entropy", 1, 0, ["x", "y"], {"RV": 0.7, "Myo": 0.6, "LV": 0.9}),
               _record("entropy", 0, 1, ["w"], {"RV": 0.8, "Myo": None, "LV": 0.9})]
    text = script.block(records, facts, ["x", "y"], CLASSES, ["entropy", "random"])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:4] == ["| every training slice | — | 4 | 50 % (2) | 50 % (2) | 25 % (1) |",
                         "| round 0's masked slices (start budget) | — | 2 | 50 % (1) | 100 % (2) | 0 % (0) |",
                         "| entropy, suggested after round 0 | 0 1 | 4 | 75 % (3) | 75 % (3) | 25 % (1) |"]
    assert rows[4:6] == ["| entropy, suggested after round 1 | 0 | 1 | 0 % (0) | 0 % (0) | 0 % (0) |",
                         "| random, suggested after round 0 | 0 | 2 | 0 % (0) | 50 % (1) | 0 % (0) |"]
    # round 0 once (its seeds' shared trainings: seed 0's record of either strategy, and seed 1's), then round 1
    assert rows[-2] == "| every strategy (shared) | 0 | 2 | 0.600 ± 0.141 | 0.600 ± 0.000 | 0.800 ± 0.141 |"
    assert rows[-1].startswith("| entropy | 1 | 1 | 0.800 | nan | 0.900 |")
    assert math.isnan(script.class_dice(records[-1], "Myo"))


def test_the_last_round_suggests_nothing_and_gets_only_its_dice_row(script):
    """The loop's last round is scored but suggests no slices: no shares row for it, its Dice row kept."""
    facts = {"x": script.SliceFacts(True, 3), "y": script.SliceFacts(False, 3)}
    records = [_record("entropy", 0, 0, ["x"], {"RV": 0.5, "Myo": 0.6, "LV": 0.7}),
               _record("entropy", 0, 1, [], {"RV": 0.8, "Myo": 0.6, "LV": 0.9})]
    text = script.block(records, facts, ["y"], CLASSES, ["entropy"])
    assert "suggested after round 1" not in text and "| entropy, suggested after round 0 | 0 | 1 |" in text
    assert "\n| entropy | 1 | 1 | 0.800 | 0.600 | 0.900 |" in text


def test_page_block_on_the_sample(script, tmp_path):
    source = open_source(sample_root())
    ids = {item.item_id: item for item in source.training_slices()}
    suggested = ["patient099_frame01_slice_1", "patient099_frame01_slice_9"]  # an end of its 16, and the middle
    store = tmp_path / "results" / "active_learning"
    store.mkdir(parents=True)
    rec = _record("entropy", 0, 0, suggested, dict.fromkeys(CLASSES, 0.5))
    record_path(store, "entropy", 0, 0).write_text(rec.to_json())
    page = tmp_path / "page.md"
    page.write_text("# page\n\n<!-- suggestions -->\nold\n<!-- suggestions -->\n\nafter\n")
    script.main(["--data", str(sample_root()), "--page", str(page), "--out", str(tmp_path)])
    text = page.read_text()
    full = sum(len(np.unique(ids[i].label[ids[i].label > 0])) == 3 for i in suggested)
    assert f"| entropy, suggested after round 0 | 0 | 2 | 50 % (1) | {50 * full} % ({full}) | 0 % (0) |" in text
    assert "round 0's masked slices (start budget)" in text and "old" not in text and text.endswith("after\n")


def test_no_records_or_records_of_other_data_are_clear_errors(script, tmp_path):
    with pytest.raises(SystemExit, match="no round records"):
        script.main(["--data", str(sample_root()), "--page", str(tmp_path / "p.md"), "--out", str(tmp_path)])
    facts = {"x": script.SliceFacts(True, 3)}
    with pytest.raises(SystemExit, match="slice y is not a training slice of the data"):
        script.block([_record("random", 0, 0, ["y"], dict.fromkeys(CLASSES, 0.5))], facts, ["x"], CLASSES)
