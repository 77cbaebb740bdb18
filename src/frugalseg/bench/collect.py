"""A bench's rows read back from the store of records: checked against their rows, recorded where still needed.

The pages are built from records alone (:mod:`frugalseg.bench.records`), never from run folders, so that a
page can be rebuilt in any later session from what was committed. Before anything is trained every record
and run folder of the rows is checked against the config its row asks for: a label names one experiment,
and a record of other settings (another schedule, another ``--set``, another row of the same label) is an
error naming the record and the keys, rather than a silently wrong table row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from frugalseg.bench.cost import CostModel, counts_cost
from frugalseg.bench.matrix import Row, row_config
from frugalseg.bench.options import BenchOptions
from frugalseg.bench.records import has_record, read_record, record_dir
from frugalseg.bench.report import RowResult
from frugalseg.bench.runner import CHECKPOINTS, check_record, check_run, finished, record_finished_run, run_dir

__all__ = ["check_existing", "collect", "record_finished"]

Log = Callable[[str], None]


def check_existing(rows: Sequence[Row], opts: BenchOptions, data: str) -> None:
    """Before anything is trained: no record or run folder of ``rows`` holds another config than its row.

    A record is checked instead of its run folder (the record is what the pages use; the folder may be gone).

    Raises:
        RunMismatchError: naming the record or run folder and the keys that differ.
    """
    for row in rows:
        for seed in opts.seeds:
            config = row_config(row, data, opts.schedule, seed, opts.extra)
            record, path = record_dir(opts.records_dir, row.label, seed), run_dir(opts.runs_dir, row.label, seed)
            if has_record(record):
                check_record(record, config)
            elif finished(path) or (path / "checkpoints" / "last.pt").is_file():
                check_run(path, config)


def record_finished(rows: Sequence[Row], opts: BenchOptions, data: str, log: Log = print) -> None:
    """Record every finished run folder of ``rows`` that has no record yet (scored first if needed).

    These are runs of rows outside ``--only``, runs trained before records existed, or runs whose child was
    stopped between training and recording; the pages are built from records only, so they get one now.
    """
    for row in rows:
        for seed in opts.seeds:
            record_finished_run(row, seed, data, opts.runs_dir, opts.records_dir, opts.schedule, opts.extra, log,
                                opts.device)


def collect(rows: Sequence[Row], opts: BenchOptions, data: str,
            cost_model: CostModel | None = None) -> dict[str, RowResult]:
    """Every row with its recorded seeds (and, given a cost model, its annotation cost), from the records alone.

    A record of another config than its row is an error here too: a page shows every one of its rows, not
    only the ones this invocation trained.
    """
    results = {}
    for row in rows:
        config = row_config(row, data, opts.schedule, opts.seeds[0], opts.extra)
        sim = config.data.simulate
        res = RowResult(row, config.method.name,
                        simulates=None if sim is None else (sim.budget if sim.kind == "budget" else sim.kind))
        for seed in opts.seeds:
            path = record_dir(opts.records_dir, row.label, seed)
            if has_record(path):
                check_record(path, row_config(row, data, opts.schedule, seed, opts.extra))
                res.records.append(read_record(path, CHECKPOINTS, row.label, seed))
        if cost_model is not None and res.records and res.records[0].counts is not None:
            res.cost = counts_cost(res.records[0].counts, cost_model)
        results[row.label] = res
    return results
