"""The tables of rows given on the command line, printed and written into a named block of a method page.

``frugalseg bench --row ... --doc docs/methods/action.md --block results`` replaces the text between the two
``<!-- results -->`` lines of the page (:func:`frugalseg.files.replace_marked_block`) with where the numbers
came from (date, commit, machine, the command) and, per scored checkpoint, one table of mean ± std over seeds
(:func:`frugalseg.bench.tables.metrics_table`). The rows are read from their records in the store, as the
results page's are, so a block is rebuilt from committed files alone (``--page-only``).
:func:`written_blocks` reads such blocks back (the command each prints, the evidence it holds), so a check
that a page can still be rebuilt parses the format where it is written.
"""

from __future__ import annotations

import re
import shlex
import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from frugalseg.bench.options import BenchOptions
from frugalseg.bench.report import RowResult
from frugalseg.bench.results_page import relative
from frugalseg.bench.runner import CHECKPOINTS
from frugalseg.bench.tables import metrics_table
from frugalseg.files import replace_marked_block

__all__ = ["WrittenBlock", "block_text", "write_block", "written_blocks"]

_WRITTEN_BY = "Written by `frugalseg bench` on "
_BLOCK = re.compile(r"<!-- (?P<name>[\w-]+) -->\n" + re.escape(_WRITTEN_BY) + r"[^\n]*\n\n"
                    r"```\n(?P<command>[^\n]+)\n```\n(?P<body>.*?)<!-- (?P=name) -->", re.S)


@dataclass(frozen=True)
class WrittenBlock:
    """One block of a page as :func:`write_block` wrote it: its name, the command it prints, the text after."""

    name: str
    command: str
    body: str

    @property
    def evidence(self) -> list[str]:
        """The lines a rebuild from the same records reproduces: the tables and the training seconds.

        The date, commit and record links are left out: they change with every rebuild, the numbers must not.
        """
        return [line for line in self.body.splitlines() if line.startswith(("|", "Training seconds"))]


def written_blocks(text: str) -> list[WrittenBlock]:
    """The blocks of a page's text that ``frugalseg bench --doc`` wrote, in page order."""
    return [WrittenBlock(m["name"], m["command"], m["body"]) for m in _BLOCK.finditer(text)]


def _provenance(opts: BenchOptions) -> str:
    """Where a block's numbers came from: date, commit, machine and the command that wrote it."""
    from frugalseg.bench.provenance import git_commit, machine_description, utc_now

    argv = list(sys.argv[1:]) if opts.argv is None else list(opts.argv)
    return (f"{_WRITTEN_BY}{utc_now()} at commit {git_commit()}, "
            f"{machine_description(opts.device)}:\n\n```\n{shlex.join(['frugalseg', *argv])}\n```")


def block_text(results: Mapping[str, RowResult], opts: BenchOptions, data: str, page_dir: Path | None = None) -> str:
    """The rows' tables: one per checkpoint over the recorded seeds, the records' folder, training seconds.

    ``page_dir``: the folder of the page the text goes to (the records' folder is linked relative to it).
    """
    done = {label: res for label, res in results.items() if res.records}
    lines = [f"Validation volumes of {data}, schedule `{opts.schedule}`, seeds {list(opts.seeds)}; "
             "mean ± std over seeds of the per-seed mean over volumes (HD95/ASD in pixels).", ""]
    for which in CHECKPOINTS if done else ():
        lines += [f"**{which}.pt**", "", *metrics_table({k: res.summaries(which) for k, res in done.items()}), ""]
    pending = [f"{label} ({len(res.records)} of {len(opts.seeds)} seeds)" for label, res in results.items()
               if len(res.records) < len(opts.seeds)]
    if pending:
        lines += [f"Not finished yet: {', '.join(pending)}.", ""]
    store = opts.records_dir.as_posix() if page_dir is None else relative(opts.records_dir, page_dir)
    lines += [f"Records of these runs: [`{opts.records_dir.as_posix()}`]({store}) (`<row>-s<seed>/`).", ""]
    if done:
        lines.append("Training seconds per run: " + ", ".join(
            f"{label} {statistics.mean(r.train_seconds for r in res.records):.0f}" for label, res in done.items()))
    return "\n".join(lines).rstrip() + "\n"


def write_block(results: Mapping[str, RowResult], opts: BenchOptions, data: str) -> Path:
    """Replace ``opts.block`` of ``opts.doc`` with the provenance and :func:`block_text`; return the page."""
    assert opts.doc is not None and opts.block is not None
    page = Path(opts.doc)
    body = _provenance(opts) + "\n\n" + block_text(results, opts, data, page.parent)
    return replace_marked_block(page, opts.block, body)
