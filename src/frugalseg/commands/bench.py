"""``frugalseg bench``: train the benchmark matrix (or rows given with ``--row``), resumably, and write their page.

::

    frugalseg bench --data ../shared/data/ACDC [--schedule quick|paper] [--only ROW ...] [--seeds 0 1 2]
                    [--runs DIR] [--out DIR] [--set KEY=VALUE ...] [--cost-model FILE] [--jobs N] [--list | --page-only]
    frugalseg bench --data ../shared/data/ACDC --row LABEL=CONFIG[,KEY=VALUE...] ... [--doc PAGE --block NAME] ...

Without ``--row``, the rows of ``frugalseg/bench/matrix.yaml`` are trained in table order, every seed of a
row before the next row, into ``<runs>/<label>-s<seed>`` (default ``runs/bench/<schedule>``), and
``<out>/results.md`` (default ``docs/``) is written from the records of every row. With ``--row``, those
rows are trained instead, their tables printed and, with ``--doc PAGE --block NAME``, written into the
``<!-- NAME -->`` block of a method page. As soon as a run is trained it is scored and its **record** is
written to the one store every page reads, ``<out>/results/runs/<label>-s<seed>``; a row x seed with a
record is finished and not trained again, so the command can be killed and started again at any time, in
any session. ``--jobs N`` trains up to N runs side by side in child processes. ``--list`` prints the rows,
what is done and the estimated wall time; ``--page-only`` trains nothing and writes the page from the
records there are.

This module only turns the arguments into :class:`~frugalseg.bench.options.BenchOptions`; the work is
:mod:`frugalseg.bench` (:mod:`~frugalseg.bench.session` gives its order).
"""

from __future__ import annotations

import argparse

from frugalseg.bench.options import BenchOptions, common_options
from frugalseg.bench.session import list_bench, run_bench

__all__ = ["bench_command", "bench_options"]


def bench_options(args: argparse.Namespace) -> BenchOptions:
    """The bench's options from the parsed ``frugalseg bench`` arguments."""
    return BenchOptions(only=args.only, rows=args.rows, jobs=args.jobs, page_only=args.page_only, doc=args.doc,
                        block=args.block, **common_options(args))


def bench_command(args: argparse.Namespace) -> int:
    """Run ``frugalseg bench`` (``--list``: print the plan instead); the exit status."""
    opts = bench_options(args)
    if args.list:
        print(list_bench(opts))
    else:
        run_bench(opts)
    return 0
