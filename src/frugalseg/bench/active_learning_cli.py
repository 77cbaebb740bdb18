"""``frugalseg bench --active-learning [SPEC]``: the bench's arguments turned into the loop's options."""

from __future__ import annotations

import argparse

from frugalseg.bench.active_learning import LoopOptions, load_loop_spec
from frugalseg.bench.options import common_options
from frugalseg.errors import ConfigError

__all__ = ["active_learning_command"]


def active_learning_command(args: argparse.Namespace) -> int:
    """Run (or ``--list``, or ``--page-only``) the loop with the bench's ``--data --schedule --seeds --runs --out
    --set --cost-model --device``; ``--only``, ``--row``, ``--doc`` and ``--jobs`` are about rows: refused."""
    from frugalseg.bench.active_learning_run import plan_text, run_active_learning

    if args.only or getattr(args, "rows", None) or getattr(args, "doc", None):
        raise ConfigError("--only, --row and --doc are about rows of the bench; the active-learning loop has none")
    if args.jobs != 1:
        raise ConfigError("--jobs: the active-learning loop trains one round at a time (each round needs the last)")
    opts = LoopOptions(spec=load_loop_spec(args.active_learning or None), **common_options(args))
    if args.list:
        print(plan_text(opts))
        return 0
    run_active_learning(opts, page_only=args.page_only)
    return 0
