"""``frugalseg bench --active-learning [SPEC]``: the bench's arguments turned into the loop's options."""

from __future__ import annotations

import argparse
import sys

from frugalseg.bench.active_learning import LoopOptions, load_loop_spec
from frugalseg.bench.options import common_options
from frugalseg.errors import ConfigError

__all__ = ["active_learning_command"]


def active_learning_command(args: argparse.Namespace) -> int:
    """Run (or ``--list``, or ``--page-only``) the loop with the bench's ``--data --schedule --seeds --runs --out
    --set --cost-model --device --jobs``; ``--only``, ``--row`` and ``--doc`` are about rows: refused.

    With ``--jobs N`` (N > 1) the rounds are trained by N worker processes that share them
    (:mod:`frugalseg.bench.active_learning_workers`); the page is written once all have ended. Returns 1
    when a worker failed (the page is still written from what was recorded).
    """
    from frugalseg.bench.active_learning_run import plan_text, run_active_learning, write_page

    if args.only or getattr(args, "rows", None) or getattr(args, "doc", None):
        raise ConfigError("--only, --row and --doc are about rows of the bench; the active-learning loop has none")
    opts = LoopOptions(spec=load_loop_spec(args.active_learning or None), **common_options(args))
    if args.list:
        print(plan_text(opts, args.jobs))
        return 0
    if args.jobs == 1 or args.page_only:
        run_active_learning(opts, page_only=args.page_only)
        return 0
    from frugalseg.bench.active_learning_workers import run_workers
    from frugalseg.data.simulate import load_budget

    load_budget(opts.spec.start)  # a bad start budget fails before any worker starts
    failures = run_workers(opts, args.active_learning or None, args.jobs)
    write_page(opts)
    for failure in failures:
        print(f"frugalseg bench: error: {failure.describe()}", file=sys.stderr)
    return 1 if failures else 0
