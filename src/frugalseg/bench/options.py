"""What ``frugalseg bench`` was asked: the rows to run, the seeds and schedule, and where runs, records and pages go.

Two kinds of invocation share these options:

- the **matrix** (no ``--row``): the rows of ``matrix.yaml`` (``--only`` trains a few of them), and the
  results page ``<out>/results.md`` shows them all;
- **rows given on the command line** (``--row label=config[,key=value...]``, or ``--row LABEL`` for a row of
  the matrix): ablations and evidence runs that are no row of the matrix (``action3_no_anco``,
  ``mlds_ordinary``, ...); their tables are printed and, with ``--doc PAGE --block NAME``, written into the
  ``<!-- NAME -->`` block of a method page.

Either way every run's record goes to one store, ``<out>/results/runs/<label>-s<seed>/`` (default
``docs/results/runs/``), which the results page and every method page read: a row's records exist once,
and a label names one experiment (a record of another config than its row is refused), so two pages can
never show different runs under one name.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalseg.bench.matrix import Matrix, Row, parse_row
from frugalseg.bench.records import has_record, record_dir
from frugalseg.bench.runner import finished, run_dir
from frugalseg.config import DATA_ENV
from frugalseg.errors import ConfigError, FrugalsegError

__all__ = ["PAGE_STEM", "RECORDS_FOLDER", "BenchOptions", "BenchRunsFailedError", "CommonOptions", "common_options",
           "resolve_row"]

PAGE_STEM = "results"
"""Name of the results page in ``--out`` (``results.md``) and of its data folder (``results/``)."""

RECORDS_FOLDER = "runs"
"""The records' folder inside the results page's data folder: ``<out>/results/runs/``, the store of every page."""


class BenchRunsFailedError(FrugalsegError):
    """Some runs of a ``--jobs`` bench failed; the others finished and the page was written without them."""


def resolve_row(text: str, matrix: Matrix) -> Row:
    """A ``--row``: ``label=config[,key=value...]``, or the bare label of a row of the matrix.

    Raises:
        ConfigError: neither form (naming the matrix's rows for a bare word).
    """
    if "=" not in text and text in matrix.rows:
        return matrix.row(text)
    if "=" not in text:
        raise ConfigError(f"--row {text}: expected label=config[,key=value...] or a row of the matrix "
                          f"({', '.join(matrix.rows)})")
    return parse_row(text)


@dataclass(kw_only=True)
class CommonOptions:
    """What every ``frugalseg bench`` was asked, the matrix, ``--row`` and ``--active-learning`` alike.

    The arguments of the data, the schedule, the seeds, and where runs and pages go mean the same in every
    mode; each mode's options add their own (:class:`BenchOptions`,
    :class:`~frugalseg.bench.active_learning.LoopOptions`).
    """

    data: str | None = None
    schedule: str = "quick"
    seeds: Sequence[int] = (0, 1, 2)
    runs: Path | None = None
    out: Path = Path("docs")
    extra: Sequence[str] = ()
    cost_model: Path | None = None
    device: str | None = None
    argv: Sequence[str] | None = None

    @property
    def runs_dir(self) -> Path:
        return self.runs if self.runs is not None else Path("runs") / "bench" / self.schedule

    @property
    def row_records_dir(self) -> Path:
        """The store of the rows' records, beside the results page, so that committing the pages commits them."""
        return Path(self.out) / PAGE_STEM / RECORDS_FOLDER

    def data_root(self) -> str:
        root = self.data or os.environ.get(DATA_ENV)
        if not root:
            raise ConfigError(f"frugalseg bench needs --data (or ${DATA_ENV}): the folder of the data to train on")
        return root


def common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`CommonOptions` fields from the parsed ``frugalseg bench`` arguments (keyword arguments)."""
    return {"data": None if args.data is None else str(args.data), "schedule": args.schedule, "seeds": args.seeds,
            "runs": args.runs, "out": args.out, "extra": args.extra, "cost_model": args.cost_model,
            "device": args.device, "argv": args.argv}


@dataclass(kw_only=True)
class BenchOptions(CommonOptions):
    """What ``frugalseg bench`` was asked for the matrix or ``--row`` rows (the CLI's arguments)."""

    only: Sequence[str] | None = None
    rows: Sequence[str] = ()
    """``--row`` texts: run these rows instead of the matrix (see the module docstring)."""
    jobs: int = 1
    page_only: bool = False
    """Train nothing; write the page from what is recorded (finished runs without a record get one)."""
    doc: Path | None = None
    """With ``rows``: the Markdown page whose ``block`` gets the rows' tables."""
    block: str | None = None

    @property
    def records_dir(self) -> Path:
        """Where this mode's records go: the rows' store (:attr:`CommonOptions.row_records_dir`)."""
        return self.row_records_dir

    def done(self, label: str, seed: int) -> bool:
        """The row x seed needs no more training: it has a record, or a finished run folder to record."""
        return has_record(record_dir(self.records_dir, label, seed)) or finished(run_dir(self.runs_dir, label, seed))

    def selected_rows(self, matrix: Matrix) -> list[Row]:
        """The rows to train: the ``--row`` rows in the order given, else the matrix's (``--only``) in table order.

        Raises:
            ConfigError: a bad ``--row``, a label given twice, ``--row`` with ``--only``, or ``--doc`` without
                ``--row``, before anything is read or trained.
        """
        self.check()
        if not self.rows:
            return matrix.ordered_rows(self.only)
        rows = [resolve_row(text, matrix) for text in self.rows]
        labels = [row.label for row in rows]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ConfigError(f"--row: label {', '.join(twice)} given twice (a label names one run)")
        return rows

    def check(self) -> None:
        """The options fit together, and ``--doc``'s block can be written (before anything is trained)."""
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed")
        if self.rows and self.only:
            raise ConfigError("--only selects rows of the matrix; with --row, list the rows to run with --row")
        if (self.doc is None) != (self.block is None):
            raise ConfigError("--doc PAGE and --block NAME go together")
        if self.doc is not None and not self.rows:
            raise ConfigError("--doc: a method page shows rows given with --row (the matrix has docs/results.md)")
        if self.doc is not None:
            _check_block(Path(self.doc), str(self.block))


def _check_block(page: Path, block: str) -> None:
    """``page`` can take the ``<!-- block -->`` block: readable if it exists, and the block closed if opened."""
    if not page.exists():
        return
    try:
        text = page.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--doc {page}: cannot read the page ({exc})") from exc
    if text.count(f"<!-- {block} -->") == 1:
        raise ConfigError(f"--doc {page}: <!-- {block} --> opens a block that is never closed")
