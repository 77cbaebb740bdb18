from __future__ import annotations

from frugalseg.bench.cost import counts_cost, load_cost_model
from frugalseg.bench.matrix import load_matrix, row_config
from frugalseg.bench.papers import load_paper_results
from frugalseg.bench.report import Header, RowResult, against_baseline, render_report
from frugalseg.bench.results_page import included
from frugalseg.bench.runner import load_record
from frugalseg.bench.tables import SeedStats
from tests.bench.fakes import fake_run

MASKS = {"format": "frugalseg.annotations/1", "classes": {"1": "RV", "2": "Myo", "3": "LV"},
         "items": {f"s{i}": {"mask": True} for i in range(68)}}


def _results(tmp_path, finished):
    """Every matrix row, ``finished`` ones with fake runs (seeds 0 and 1; dice by hand)."""
    matrix = load_matrix()
    model = load_cost_model()
    results = {}
    for row in matrix.ordered_rows():
        sim = row_config(row, "/unused", "quick", 0).data.simulate
        res = RowResult(row, row.label.rstrip("37"), simulates=sim.budget if sim.kind == "budget" else sim.kind)
        for seed, dice in enumerate(finished.get(row.label, [])):
            fake_run(tmp_path, row.label, seed, dice, train_seconds=600 + 60 * seed, annotations=MASKS)
            record = load_record(row.label, seed, tmp_path, "/unused")
            assert record is not None
            res.records.append(record)
        if res.records:
            res.cost = counts_cost(res.records[0].counts, model)
        results[row.label] = res
    return matrix, results, model


def test_report_tables_deltas_costs_papers_and_pending_rows(tmp_path):
    matrix, results, model = _results(tmp_path, {"supervised3": [0.50, 0.54], "mean_teacher3": [0.60, 0.62],
                                                 "action3": [0.70]})
    header = Header(written="2026-01-01 00:00 UTC", commit="abc1234", machine="test machine", command="frugalseg bench",
                    schedule="quick", schedule_shape="128x128, batch 8, 3000 iterations", seeds=[0, 1],
                    data="/data/ACDC", runs="runs/bench/quick", trained_now_seconds=0.0)
    papers = load_paper_results()
    text = render_report(matrix, results, papers, model, header, {"dice_vs_cost": "figures/x.png"},
                         {"per-volume": "results/per_volume_last.csv"})
    lines = text.splitlines()
    assert lines[0] == "# Results"
    assert "at commit abc1234" in text and "test machine" in text and "`quick` (128x128" in text
    # 5 runs of 600 + 660 + 600 + 660 + 600 s
    assert "training time of the 5 runs on this page: 3,120 s (0.9 h)" in text
    row = next(ln for ln in lines if ln.startswith("| mean_teacher3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # annotation: 68 masks x 3 structures x 20 s; Δ vs supervised3: 0.61 - 0.52
    assert cells[:6] == ["mean_teacher3", "mean_teacher", "method", "2", "4,080", "0.610 ± 0.014"]
    # 0.610 ± 0.014 against 0.520 ± 0.028: the ranges [0.596, 0.624] and [0.492, 0.548] lie apart
    assert cells[-2:] == ["+0.090, above", "10.5"]
    action = [c.strip() for c in next(ln for ln in lines if ln.startswith("| action3 |")).strip("|").split("|")]
    assert action[3] == "1/2" and action[-2] == "+0.180"
    assert "Annotation cost of the budget: **4,080 s (1.1 h)**" in text
    # masks3_boxes_tags borrows supervised3 and mean_teacher3: its own file (with boxes, tags) is not costed yet
    tail = text.split("## masks3_boxes_tags")[1]
    assert "known once a row trained on its own annotation file has finished" in tail.split("|")[0]
    assert "Not finished yet: action3 (1 of 2 seeds)" in text
    assert "No row of this budget has finished yet." in text  # e.g. all_masks
    # the papers' numbers are in their own table, with their source, split and schedule
    assert "| ACTION | action3 |" in text and "87.5 %" in text and "[action_ipmi] You et al." in text
    assert "No reported numbers: DII + DCR" in text
    assert "![Dice against annotation cost](figures/x.png)" in text
    assert "[results/per_volume_last.csv](results/per_volume_last.csv)" in text
    assert "## Appendix: `best.pt`" in text and "annotation-cost.md" in text


def test_against_baseline_says_above_or_below_only_when_the_ranges_lie_apart():
    base = SeedStats(0.80, 0.01, 3)
    assert against_baseline(SeedStats(0.83, 0.015, 3), base) == "+0.030, above"  # 0.815 > 0.81
    assert against_baseline(SeedStats(0.82, 0.015, 3), base) == "+0.020, within ± std"  # 0.805 < 0.81
    assert against_baseline(SeedStats(0.778, 0.008, 3), SeedStats(0.810, 0.005, 3)) == "-0.032, below"
    assert against_baseline(SeedStats(0.708, 0.017, 3), SeedStats(0.717, 0.017, 3)) == "-0.009, within ± std"
    assert against_baseline(SeedStats(0.90, None, 1), base) == "+0.100"  # one seed: no range, no word


def test_report_prints_each_rows_note_under_every_table_that_lists_it_trained_or_not(tmp_path):
    matrix, results, model = _results(tmp_path, {"supervised7": [0.6, 0.62]})
    matrix = matrix.model_copy(update={"notes": {"medsam_boxes": "seen by the model.", "supervised7": "shared."}})
    header = Header(written="2026-01-01 00:00 UTC", commit="abc1234", machine="m", command="frugalseg bench",
                    schedule="quick", schedule_shape="s", seeds=[0, 1], data="/d", runs="r")
    text = render_report(matrix, results, load_paper_results(), model, header, {}, {})
    sections = {s.split(":", 1)[0]: s for s in text.split("\n## ")[1:]}
    boxes = sections["masks7_boxes"]
    assert "**Read with care**:" in boxes
    assert "- `supervised7`: shared." in boxes and "- `medsam_boxes`: seen by the model." in boxes
    # medsam_boxes has not finished: its note is there all the same, after the table
    assert boxes.index("| supervised7 |") < boxes.index("- `medsam_boxes`") and "medsam_boxes (0 of 2" in boxes
    assert "- `supervised7`: shared." in sections["masks7"] and "medsam_boxes" not in sections["masks7"]
    assert "Read with care" not in sections["points"]
    assert "apply here too" in sections["Appendix"]
    plain = render_report(matrix.model_copy(update={"notes": {}}), results, load_paper_results(), model, header, {}, {})
    assert "Read with care" not in plain


def test_a_budgets_include_file_is_printed_under_its_table_or_said_missing(tmp_path):
    matrix, results, model = _results(tmp_path, {})
    assert [b.include for b in matrix.budgets if b.include] == ["results/medsam_quality_masks7_boxes.md",
                                                                "results/medsam_quality_masks3_boxes_tags.md"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "medsam_quality_masks7_boxes.md").write_text("Made by a script.\n\n| a | b |\n")
    inserts = included(matrix, tmp_path)
    assert inserts == {"masks7_boxes": "Made by a script.\n\n| a | b |\n",
                       "masks3_boxes_tags": "`results/medsam_quality_masks3_boxes_tags.md`, which this section "
                                            "includes, is not written yet."}
    header = Header(written="2026-01-01 00:00 UTC", commit="abc1234", machine="m", command="frugalseg bench",
                    schedule="quick", schedule_shape="s", seeds=[0], data="/d", runs="r")
    text = render_report(matrix, results, load_paper_results(), model, header, {}, {}, inserts)
    sections = {s.split(":", 1)[0]: s for s in text.split("\n## ")[1:]}
    assert "Made by a script.\n\n| a | b |\n" in sections["masks7_boxes"]
    assert "is not written yet" in sections["masks3_boxes_tags"] and "Made by" not in sections["masks3_boxes_tags"]
