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
