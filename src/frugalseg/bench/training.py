"""Train the rows of a bench that are not finished: one after the other here, or ``--jobs N`` side by side.

Every run is trained, scored and recorded by :func:`frugalseg.bench.runner.train_and_record` (in this process
or in a child, :mod:`frugalseg.bench.parallel`), which skips a row x seed with a record or a finished run
folder and resumes a killed one; so a bench can be killed and started again at any time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from frugalseg.bench.matrix import Row
from frugalseg.bench.options import BenchOptions
from frugalseg.bench.runner import train_and_record
from frugalseg.errors import ConfigError

__all__ = ["check_jobs", "train_rows"]

Log = Callable[[str], None]


def check_jobs(jobs: int) -> list[str] | None:
    """Validate ``--jobs`` before anything is trained; the GPU of each worker on a GPU machine (else ``None``)."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more")
    if jobs == 1:
        return None
    from frugalseg.bench.parallel import gpu_devices

    return gpu_devices(jobs)


def train_rows(rows: Sequence[Row], opts: BenchOptions, data: str, devices: list[str] | None,
               log: Log = print) -> tuple[float, list[str]]:
    """Make every row x seed finished (trained, scored, recorded); the seconds trained and the failed runs.

    ``--jobs 1`` fails at the first error (nothing else is running); ``--jobs N`` reports each failed run and
    lets the others finish.
    """
    if opts.jobs > 1:
        return _train_in_children(rows, opts, data, devices, log)
    return _train_in_process(rows, opts, data, log), []


def _train_in_process(rows: Sequence[Row], opts: BenchOptions, data: str, log: Log) -> float:
    """``--jobs 1``: train, score and record the runs one after the other in this process; seconds training."""
    trained = 0.0
    for row in rows:
        for seed in opts.seeds:
            t0 = time.perf_counter()
            if train_and_record(row, seed, data, opts.runs_dir, opts.records_dir, opts.schedule, opts.extra,
                                log=log, device=opts.device):
                trained += time.perf_counter() - t0
            else:
                log(f"[{row.label} s{seed}] finished earlier: skipped")
    return trained


def _train_in_children(rows: Sequence[Row], opts: BenchOptions, data: str, devices: list[str] | None,
                       log: Log) -> tuple[float, list[str]]:
    """``--jobs N``: train the unrecorded runs N at a time in child processes; wall seconds and failures.

    Each child decides train / skip / resume itself with ``train_and_record``, and scores and records its
    run (a finished run folder without a record only gets scored and recorded).
    """
    from frugalseg.bench.parallel import train_side_by_side, unfinished_jobs

    jobs = unfinished_jobs(list(rows), opts.seeds, data, opts.runs_dir, opts.schedule, extra=opts.extra,
                           records=opts.records_dir, device=opts.device, log=log)
    seconds, failures = train_side_by_side(jobs, opts.jobs, devices, log)
    return seconds, [f.describe() for f in failures]
