"""One ``frugalseg bench`` invocation in order: check, train what is not finished, record, write the page.

1. Resolve the rows (:meth:`BenchOptions.selected_rows`) and their configs, validate ``--jobs``, and check
   every existing record and run folder of the rows against its row, before anything is trained.
2. Train the rows that are not finished (:mod:`frugalseg.bench.training`; nothing with ``--page-only``).
3. Record every finished run without a record, and read every row back from the store of records
   (:mod:`frugalseg.bench.collect`).
4. Write the page: for the matrix, ``docs/results.md`` with its CSVs and figures
   (:mod:`frugalseg.bench.results_page`), covering every row of the matrix, not only the ``--only`` rows;
   for rows given with ``--row``, their tables, printed and, with ``--doc``, written into the page's block
   (:mod:`frugalseg.bench.method_block`).

A failed run of a ``--jobs`` bench is reported after the page of the others is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from frugalseg.bench.collect import check_existing, collect, record_finished
from frugalseg.bench.matrix import Matrix, Row, load_matrix
from frugalseg.bench.options import BenchOptions, BenchRunsFailedError
from frugalseg.bench.plan import plan_bench, plan_text
from frugalseg.bench.report import RowResult
from frugalseg.bench.training import check_jobs, train_rows

__all__ = ["list_bench", "run_bench"]

Log = Callable[[str], None]


def list_bench(opts: BenchOptions) -> str:
    """The ``--list`` text (no data is read, nothing is trained)."""
    matrix = load_matrix()
    return plan_text(plan_bench(matrix, opts), matrix, opts)


def run_bench(opts: BenchOptions, log: Log = print) -> Path | None:
    """Train the selected rows (skipping recorded runs), record them, then write their page from records.

    Returns:
        the page written (``docs/results.md``, or ``--doc``); ``None`` for ``--row`` rows without ``--doc``
        (their tables are only printed).

    Raises:
        BenchRunsFailedError: with ``--jobs`` > 1, some runs failed (after the page of the others is written).
    """
    matrix = load_matrix()
    data = opts.data_root()
    opts = dataclasses.replace(opts, data=data)
    rows = opts.selected_rows(matrix)
    page_rows = rows if opts.rows else matrix.ordered_rows()
    devices = check_jobs(opts.jobs)
    plan_bench(matrix, opts, rows)  # every row's config resolves before anything is trained
    check_existing(page_rows, opts, data)
    trained, failed = 0.0, list[str]()
    if opts.page_only:
        log("--page-only: nothing is trained")
    else:
        trained, failed = train_rows(rows, opts, data, devices, log)
    record_finished(page_rows, opts, data, log)
    out = _write_rows_page(opts, data, page_rows, log) if opts.rows else _write_results_page(
        matrix, opts, data, trained, log)
    if failed:
        shown = f"{out} shows them" if out is not None else "the tables above show them"
        raise BenchRunsFailedError(
            f"{len(failed)} run(s) failed, the others finished and {shown}: {'; '.join(failed)}. Run the same "
            "command again to retry the failed runs (finished runs are skipped)")
    return out


def _write_results_page(matrix: Matrix, opts: BenchOptions, data: str, trained: float, log: Log) -> Path:
    """``docs/results.md`` of every row of the matrix, from the records."""
    from frugalseg.bench.cost import load_cost_model
    from frugalseg.bench.papers import load_paper_results
    from frugalseg.bench.results_page import write_results_page

    cost_model = load_cost_model(opts.cost_model)
    papers = load_paper_results(budgets={b.name for b in matrix.budgets}, rows=set(matrix.rows))
    results = collect(matrix.ordered_rows(), opts, data, cost_model)
    shapes = plan_bench(matrix, opts, matrix.ordered_rows()).shapes
    return write_results_page(matrix, results, opts, data, cost_model, papers, shapes, trained, log)


def _write_rows_page(opts: BenchOptions, data: str, rows: Sequence[Row], log: Log) -> Path | None:
    """The ``--row`` rows' tables: logged, and written into ``--doc``'s block when given."""
    from frugalseg.bench.method_block import block_text, write_block

    results: dict[str, RowResult] = collect(rows, opts, data)
    log(block_text(results, opts, data).rstrip())
    if opts.doc is None:
        return None
    page = write_block(results, opts, data)
    log(f"wrote block <!-- {opts.block} --> of {page} (records in {opts.records_dir}, to commit with the page)")
    return page
