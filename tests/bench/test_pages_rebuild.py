"""Every results block of a docs page that ``frugalseg bench --doc`` wrote is rebuilt, from the committed records
alone, by the command the block itself prints: the tables come out the same. So are the two pages the bench
writes whole: ``docs/results.md`` (with its CSVs) and the active-learning loop's block of
``docs/active-learning.md``.

Why: a block's command is the page's claim that its numbers come from the bench, and a change to a shipped
config or schedule silently breaks that claim (a record of another config is refused). When issue #21 replaced
the quick schedule's optimiser, the former-schedule blocks kept commands that no longer matched their records;
this test is what would have said so. Nothing is trained: ``--page-only`` reads records, and any training
attempt fails the test. The data folder is only compared as a path, never read, so ``../shared`` need not exist.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from frugalseg.bench.method_block import WrittenBlock, written_blocks
from frugalseg.cli import main

REPO = Path(__file__).resolve().parents[2]


def _blocks() -> list[tuple[str, WrittenBlock]]:
    """(page, block) of every bench-written ``--doc`` block of ``docs/``."""
    return [(page.relative_to(REPO).as_posix(), block)
            for page in sorted((REPO / "docs").rglob("*.md"))
            for block in written_blocks(page.read_text(encoding="utf-8"))
            if "--doc" in shlex.split(block.command)]


def _page_only_args(command: str, doc: Path, runs: Path) -> list[str]:
    """The block's command with its page swapped for ``doc``, no run folders, and nothing trained."""
    args = shlex.split(command)
    assert args[:2] == ["frugalseg", "bench"], command
    out: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if arg in ("--doc", "--jobs", "--runs"):
            next(rest)
            if arg == "--doc":
                out += ["--doc", str(doc)]
            continue
        out.append(arg)
    return [*out, "--runs", str(runs)] + ([] if "--page-only" in out else ["--page-only"])


BLOCKS = _blocks()


def test_the_docs_hold_bench_blocks():
    pages = {page for page, _ in BLOCKS}
    assert {"docs/methods/action.md", "docs/methods/mlds.md", "docs/methods/dii_dcr.md",
            "docs/methods/pscv.md"} <= pages


@pytest.mark.parametrize("page, block", BLOCKS, ids=[f"{page}:{block.name}" for page, block in BLOCKS])
def test_a_bench_block_is_rebuilt_by_its_own_command(page, block, tmp_path, monkeypatch, capsys):
    import frugalseg.train as train

    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail(f"{page} {block.name}: its command trains"))
    monkeypatch.chdir(REPO)
    doc = tmp_path / Path(page).name
    doc.write_text((REPO / page).read_text(encoding="utf-8"), encoding="utf-8")
    code = main(_page_only_args(block.command, doc, tmp_path / "runs"))
    assert code == 0, f"{page} block {block.name}: its command fails: {capsys.readouterr().err.strip()}"
    rebuilt = {b.name: b for b in written_blocks(doc.read_text(encoding="utf-8"))}[block.name]
    assert rebuilt.evidence == block.evidence, f"{page} block {block.name}: its command no longer rebuilds it"


PAGES = {
    "docs/results.md": ["bench", "--data", "../shared/data/ACDC", "--page-only"],
    "docs/active-learning.md": ["bench", "--active-learning", "--data", "../shared/data/ACDC", "--page-only"],
}
"""The whole-page writers (the results page, the active-learning loop's block) and their commands."""

_PROVENANCE = re.compile(r"^(Written (by|on) |- machine: |- training time |frugalseg bench |Predictions of the "
                         r"first seed|!\[predictions, )")
"""Lines that differ on a rebuild: when, where and by which invocation a page was written, and the prediction
panels, which need the data's validation images (absent here: ``../shared`` is not needed by the tests)."""


def _without_provenance(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not _PROVENANCE.match(line)]


@pytest.mark.parametrize("page", PAGES)
def test_a_bench_page_is_rebuilt_from_the_committed_records(page, tmp_path, monkeypatch, capsys):
    """The page's tables, figures' captions, pooled lines and CSVs come out the same from the records alone."""
    import frugalseg.train as train

    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail(f"{page}: its command trains"))
    monkeypatch.chdir(tmp_path)  # a copy of docs/ where the command's default --out and --runs find it
    shutil.copytree(REPO / "docs" / "results", tmp_path / "docs" / "results", ignore=shutil.ignore_patterns("archive"))
    doc = tmp_path / page
    doc.write_text((REPO / page).read_text(encoding="utf-8"), encoding="utf-8")
    code = main(PAGES[page])
    assert code == 0, f"{page}: its command fails: {capsys.readouterr().err.strip()}"
    assert _without_provenance(doc.read_text(encoding="utf-8")) == _without_provenance((REPO / page).read_text(
        encoding="utf-8")), f"{page}: the committed records no longer rebuild it"
    for table in ("runs.csv", "per_volume_best.csv", "per_volume_last.csv"):
        rebuilt, committed = tmp_path / "docs" / "results" / table, REPO / "docs" / "results" / table
        assert rebuilt.read_bytes() == committed.read_bytes(), f"{page}: {table} is not rebuilt the same"
