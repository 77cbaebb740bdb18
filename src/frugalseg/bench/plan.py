"""What a bench will train and how long it will take: ``frugalseg bench --list``, and the header's schedule shape.

The estimates are the measured minutes per method in ``matrix.yaml`` (:class:`~frugalseg.bench.matrix.Estimates`),
scaled by each row's iterations; a row of another shape gets none. When the estimate exceeds the
:data:`HOURS_LIMIT` the quick bench must fit, the listing says how to fit it (more ``--jobs``, fewer iterations,
fewer seeds), cheapest in lost results first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from frugalseg.bench.matrix import Matrix, Row, row_config
from frugalseg.bench.options import BenchOptions

__all__ = ["HOURS_LIMIT", "Plan", "PlannedRow", "plan_bench", "plan_text"]

HOURS_LIMIT = 6.0
"""The quick bench must fit this many hours on the 2-core CPU it was sized for (issue 8)."""


@dataclass
class PlannedRow:
    """One row to train: its method, the budgets (tables) that show it, its estimate, its finished seeds."""

    row: Row
    method: str
    budgets: list[str]
    minutes: float | None
    done: int


@dataclass
class Plan:
    """The rows to train, with their time estimates."""

    rows: list[PlannedRow]
    seeds: Sequence[int]
    eval_minutes: float
    shapes: list[str] = field(default_factory=list)
    iterations: int | None = None
    """``train.iterations`` of every row, where they share it (the base that iteration hints scale)."""

    @property
    def runs(self) -> int:
        return len(self.rows) * len(self.seeds)

    def _minutes(self) -> list[float] | None:
        """Every row's estimated training minutes per run, in order; ``None`` if a row has no estimate."""
        minutes = [r.minutes for r in self.rows]
        return None if any(m is None for m in minutes) else [m for m in minutes if m is not None]

    def total_minutes(self, seeds: int | None = None, scale: float = 1.0, speedup: float = 1.0) -> float | None:
        """Estimated wall minutes of every run; ``None`` if a row has no estimate.

        Training (× ``scale``) is divided by ``speedup`` (:meth:`Estimates.speedup` of ``--jobs``);
        evaluation is not: with ``--jobs`` each child scores its own run side by side with the others, but
        the evaluation minutes were measured for one run alone, so they are counted in full (conservative).
        """
        minutes = self._minutes()
        if minutes is None:
            return None
        n = len(self.seeds) if seeds is None else seeds
        training = n * sum(m * scale for m in minutes)
        return training / speedup + n * len(self.rows) * self.eval_minutes

    def remaining_minutes(self, speedup: float = 1.0) -> float | None:
        """Like :meth:`total_minutes` for the runs not finished yet."""
        minutes = self._minutes()
        if minutes is None:
            return None
        left = [len(self.seeds) - r.done for r in self.rows]
        training = sum(n * m for n, m in zip(left, minutes, strict=True))
        return training / speedup + sum(left) * self.eval_minutes


def plan_bench(matrix: Matrix, opts: BenchOptions, rows: Sequence[Row] | None = None) -> Plan:
    """Resolve the config of every row (default: the selected ones; no data is read) and estimate its time."""
    selected = opts.selected_rows(matrix) if rows is None else rows
    planned, shapes, iterations = [], [], set()
    for row in selected:
        config = row_config(row, opts.data, opts.schedule, opts.seeds[0], opts.extra)
        shape = (f"{config.data.patch_size[0]}x{config.data.patch_size[1]}, batch {config.train.batch_size}, "
                 f"{config.train.iterations} iterations")
        shapes.append(shape)
        iterations.add(config.train.iterations)
        done = sum(opts.done(row.label, s) for s in opts.seeds)
        planned.append(PlannedRow(row, config.method.name, [b.name for b in matrix.budgets_of(row.label)],
                                  matrix.estimates.minutes_for(config), done))
    common = iterations.pop() if len(iterations) == 1 else None
    return Plan(planned, list(opts.seeds), matrix.estimates.eval_minutes, list(dict.fromkeys(shapes)), common)


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f} h"


def plan_text(plan: Plan, matrix: Matrix, opts: BenchOptions) -> str:
    """The ``--list`` output: rows, budgets, estimates, progress, and how to fit the time limit if needed."""
    width = max(len(r.row.label) for r in plan.rows) if plan.rows else 5
    lines = [f"frugalseg bench: {len(plan.rows)} rows x {len(plan.seeds)} seeds = {plan.runs} runs, schedule "
             f"{opts.schedule!r} ({'; '.join(plan.shapes)}), runs in {opts.runs_dir}, records in "
             f"{opts.records_dir}", ""]
    lines.append(f"{'row':<{width}}  {'min/run':>7}  {'done':>5}  budgets / config")
    for r in plan.rows:
        minutes = f"{r.minutes:.1f}" if r.minutes is not None else "?"
        lines.append(f"{r.row.label:<{width}}  {minutes:>7}  {r.done}/{len(plan.seeds):<3}  "
                     f"{', '.join(r.budgets) or '(--row)'}: {r.row.spec}")
    speedup = matrix.estimates.speedup(opts.jobs)
    total = plan.total_minutes(speedup=speedup)
    lines.append("")
    if total is None:
        lines.append("estimated wall time: no estimate (the estimates in frugalseg/bench/matrix.yaml were measured "
                     "for the quick shape on a 2-core CPU; this schedule is meant for a GPU)")
        return "\n".join(lines)
    remaining = plan.remaining_minutes(speedup) or 0.0
    jobs = f" with --jobs {opts.jobs}" if opts.jobs > 1 else ""
    lines.append(f"estimated wall time on the 2-core CPU{jobs}: {_hours(total)} ({plan.runs} runs, evaluation "
                 f"included); still to run: {_hours(remaining)}")
    if total > HOURS_LIMIT * 60:
        lines.append(f"this exceeds the {HOURS_LIMIT:g} h the quick bench must fit; ways to fit it:")
        lines += _fit_hints(plan, matrix, opts.jobs)
    return "\n".join(lines)


def _fewer_iterations_hint(plan: Plan, speedup: float, limit: float, step: int = 500) -> list[str]:
    """The most iterations, in steps of ``step``, whose estimate fits ``limit`` minutes (none: no hint)."""
    base = plan.iterations  # the rows' estimates are for these iterations already
    if base is None:
        return []
    for iterations in range(base - step, 0, -step):
        scaled = plan.total_minutes(scale=iterations / base, speedup=speedup)
        if scaled is not None and scaled <= limit:
            return [f"  --set train.iterations={iterations}   (every row {iterations} iterations instead of "
                    f"{base}): {_hours(scaled)}"]
    return []


def _fit_hints(plan: Plan, matrix: Matrix, jobs: int) -> list[str]:
    """Options that bring the estimate under the limit, cheapest in lost results first.

    More ``--jobs`` come first because they cost nothing but memory; then fewer iterations (every row less
    trained), then fewer seeds (no spread over seeds), each estimated at the given ``--jobs``.
    """
    est, limit, hints = matrix.estimates, HOURS_LIMIT * 60, []
    for more in range(jobs + 1, est.cores + 1):  # beyond the cores a job gets no core of its own
        faster = plan.total_minutes(speedup=est.speedup(more))
        if est.speedup(more) > est.speedup(jobs) and faster is not None and faster <= limit:
            threads = max(1, est.cores // more)
            hints.append(f"  --jobs {more}   ({more} runs side by side, {threads} thread{'s' * (threads > 1)} each, "
                         f"{est.speedup(more):g}x the throughput of one run): {_hours(faster)}")
            break
    speedup = est.speedup(jobs)
    hints += _fewer_iterations_hint(plan, speedup, limit)
    for n in range(len(plan.seeds) - 1, 0, -1):
        fewer = plan.total_minutes(seeds=n, speedup=speedup)
        if fewer is not None and fewer <= limit:
            hints.append(f"  --seeds {' '.join(map(str, plan.seeds[:n]))}   ({n} seeds): {_hours(fewer)}")
            break
    return hints
