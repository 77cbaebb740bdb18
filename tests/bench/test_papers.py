from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from frugalseg.bench.matrix import load_matrix
from frugalseg.bench.papers import load_paper_results, paper_results_path
from frugalseg.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "methods"


def _load():
    matrix = load_matrix()
    return load_paper_results(budgets={b.name for b in matrix.budgets}, rows=set(matrix.rows))


def test_every_entry_has_a_source_with_split_and_schedule():
    papers = _load()
    assert papers.entries
    for entry in papers.entries:
        source = papers.sources[entry.source]
        assert source.citation and source.table and source.split and source.schedule and source.shared_doc
        assert entry.dice or entry.asd or entry.hd95
    # ACTION's numbers stand beside both ACTION rows; the matrix's other budgets say why they have none
    assert {e.row for e in papers.entries if e.method == "ACTION"} == {"action3", "action7"}
    assert set(papers.missing) == {"points", "masks7_boxes", "masks3_boxes_tags"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="the team's method briefs (../shared/methods) are not here")
def test_every_number_is_in_the_brief_it_cites():
    """No number is invented: each one is written in the shared brief its source names."""
    papers = _load()
    for entry in papers.entries:
        doc = papers.sources[entry.source].shared_doc
        text = " ".join((SHARED / name).read_text() for name in re.findall(r"methods/(\w+\.md)", doc))
        for metric in ("dice", "hd95", "asd"):
            for cls, value in getattr(entry, metric).items():
                assert re.search(rf"(?<![\d.]){re.escape(f'{value:g}')}", text), (entry.method, metric, cls, value)


def test_entry_citing_an_unknown_source_names_the_file(tmp_path):
    tree = yaml.safe_load(paper_results_path().read_text())
    tree["entries"][0]["source"] = "nowhere"
    path = tmp_path / "papers.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match="nowhere") as err:
        load_paper_results(path)
    assert str(path) in str(err.value)


def test_source_without_split_and_entry_of_unknown_budget_are_refused(tmp_path):
    tree = yaml.safe_load(paper_results_path().read_text())
    del tree["sources"]["arco_table1"]["split"]
    path = tmp_path / "papers.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match="split"):
        load_paper_results(path)
    tree = yaml.safe_load(paper_results_path().read_text())
    tree["entries"][0]["budget"] = "masks99"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match="masks99"):
        load_paper_results(path, budgets={"masks3"})
