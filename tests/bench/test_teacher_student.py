"""``scripts/teacher_student.py``: both networks of the mean-teacher runs, paired seed by seed, onto the page.

The runs are made by hand with both networks' evaluations in place (what a first call of the script leaves),
so nothing is trained or evaluated; ``frugalseg eval --network`` itself is tested in ``tests/cli``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.fakes import fake_record, fake_summary
from tests.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "teacher_student.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def _runs(tmp_path: Path, row: str, scores: list[tuple[float, float]], recorded: list[float] | None = None) -> Path:
    """Records of ``row`` whose kept run folders hold both networks' evaluations: (teacher, student) per seed."""
    store = tmp_path / "records"
    for seed, (teacher, student) in enumerate(scores):
        score = teacher if recorded is None else recorded[seed]
        record = fake_record(store, tmp_path / "runs", row, seed, score, config={"seed": seed}, keep_run=True)
        run = Path(json.loads((record / "record.json").read_text())["run"])
        for network, dice in (("teacher", teacher), ("student", student)):
            (run / f"eval_last_{network}").mkdir()
            (run / f"eval_last_{network}" / "summary.json").write_text(json.dumps(fake_summary(dice)))
    return store


def _cells(text: str, row: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row} |"))
    return [c.strip() for c in line.split("|")[1:-1]]


def test_pairs_by_hand_on_the_page(script, tmp_path):
    store = _runs(tmp_path, "mean_teacher7", [(0.78, 0.80), (0.77, 0.78)])
    _runs(tmp_path, "mean_teacher7_c0", [(0.70, 0.69)])
    page = tmp_path / "performance.md"
    page.write_text("# Page\n\n<!-- teacher_student -->\nold\n<!-- teacher_student -->\n\nafter\n")
    script.main(["--data", "/d", "--page", str(page), "--records", str(store),
                 "--rows", "mean_teacher7", "mean_teacher7_c0"])
    text = page.read_text()
    assert "old" not in text and text.endswith("\nafter\n")
    # differences 0.02 and 0.01: mean 0.015, sample std 0.00707; teacher 0.775 ± 0.00707, student 0.79 ± 0.01414
    assert _cells(text, "mean_teacher7") == ["mean_teacher7", "2", "0.775 ± 0.007", "0.790 ± 0.014",
                                             "+0.015 ± 0.007", "s0 +0.020, s1 +0.010"]
    assert _cells(text, "mean_teacher7_c0") == ["mean_teacher7_c0", "1", "0.700", "0.690", "-0.010", "s0 -0.010"]


def test_a_teacher_that_disagrees_with_its_record_stops_the_script(script, tmp_path):
    store = _runs(tmp_path, "mean_teacher7", [(0.78, 0.80)], recorded=[0.75])
    with pytest.raises(SystemExit, match="the teacher scores 0.7800, its record 0.7500"):
        script.measure(store, ["mean_teacher7"], "/d")


def test_a_run_folder_that_holds_another_run_stops_the_script(script, tmp_path):
    store = _runs(tmp_path, "mean_teacher7", [(0.78, 0.80)])
    (tmp_path / "runs" / "mean_teacher7-s0" / "config.json").write_text(json.dumps({"seed": 5}))
    with pytest.raises(SystemExit, match="holds another run"):
        script.measure(store, ["mean_teacher7"], "/d")
