"""``frugalseg bench``: train the benchmark matrix row by row (resumable) and write ``docs/results.md``.

::

    frugalseg bench --data ../shared/data/ACDC [--schedule quick|paper] [--only ROW ...] [--seeds 0 1 2]
                    [--runs DIR] [--out DIR] [--set KEY=VALUE ...] [--cost-model FILE] [--jobs N] [--list | --page-only]

Rows (``frugalseg/bench/matrix.yaml``) are trained in table order, every seed of a row before the next
row, into ``<runs>/<label>-s<seed>`` (default ``runs/bench/<schedule>``). As soon as a run is trained it is
scored and its **record** is written to ``<out>/results/runs/<label>-s<seed>`` (:mod:`frugalseg.bench.records`:
config, scores, per-volume CSVs, annotation counts, the prediction panel's labels; tens of KB, committed
with the page). A row x seed with a record is finished: it is not trained again, even when its run folder
is gone (``runs/`` is not committed, and a session's machine is wiped), and a killed run is resumed from
its run folder, so the command can be killed and started again at any time, in any session, and the
records committed while it runs. ``--jobs N`` (N > 1) trains up to N runs side by side, still started in
that order, each in a child process with ``max(1, cpus // N)`` intra-op threads and its output in
``<runs>/logs/<label>-s<seed>.out`` (:mod:`frugalseg.bench.parallel`); the child writes its run's record; a
failed run is reported and the others go on, and the command exits non-zero at the end naming the failed
runs. ``--jobs 1`` (the default) trains in this process, as always.

Then every finished run of the matrix (not only the ``--only`` rows) without a record yet is recorded, and
the page is written from the records alone (the validation images of the prediction panels are read from
``--data``)::

    <out>/results.md                     the results page (``--out`` is a folder, default ``docs``)
    <out>/figures/results_*.png          Dice against annotation cost; predictions per budget
    <out>/results/per_volume_*.csv       every run's per-volume scores (row and seed prepended)
    <out>/results/runs.csv               every run: record, run folder, training seconds, annotation seconds
    <out>/results/runs/<label>-s<seed>/  the records

``--list`` prints the rows, what is done, and the estimated wall time for the given ``--jobs``, and trains
nothing. ``--page-only`` trains nothing either but writes the page (and its CSVs and figures) from the records
there are, with the rest marked as not finished: the page to commit between the sessions of a long bench.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from frugalseg.bench.cost import CostModel, counts_cost, load_cost_model
from frugalseg.bench.matrix import Matrix, Row, load_matrix, row_config
from frugalseg.bench.papers import load_paper_results
from frugalseg.bench.records import Panel, RunRecord, has_record, read_record, record_dir
from frugalseg.bench.report import Header, RowResult, render_report
from frugalseg.bench.runner import (
    CHECKPOINTS,
    check_record,
    check_run,
    finished,
    record_finished_run,
    run_dir,
    train_and_record,
)
from frugalseg.config import DATA_ENV
from frugalseg.data.types import Case
from frugalseg.errors import ConfigError, FrugalsegError
from frugalseg.files import write_text_atomic

__all__ = ["BenchOptions", "BenchRunsFailedError", "Plan", "plan_bench", "plan_text", "run_bench"]

HOURS_LIMIT = 6.0
"""The quick bench must fit this many hours on the 2-core CPU it was sized for (issue 8)."""


PAGE_STEM = "results"
"""Name of the page in ``--out`` (``results.md``) and of its data folder (``results/``)."""

RECORDS_FOLDER = "runs"
"""The records' folder inside the page's data folder: ``<out>/results/runs/``."""


class BenchRunsFailedError(FrugalsegError):
    """Some runs of a ``--jobs`` bench failed; the others finished and the page was written without them."""


@dataclass
class BenchOptions:
    """What ``frugalseg bench`` was asked (the CLI's arguments)."""

    data: str | None = None
    schedule: str = "quick"
    only: Sequence[str] | None = None
    seeds: Sequence[int] = (0, 1, 2)
    runs: Path | None = None
    out: Path = Path("docs")
    extra: Sequence[str] = ()
    cost_model: Path | None = None
    device: str | None = None
    argv: Sequence[str] | None = None
    jobs: int = 1
    page_only: bool = False
    """Train nothing; write the page from what is recorded (finished runs without a record get one)."""

    @property
    def runs_dir(self) -> Path:
        return self.runs if self.runs is not None else Path("runs") / "bench" / self.schedule

    @property
    def records_dir(self) -> Path:
        """The records, beside the page they feed, so that committing the page commits them."""
        return Path(self.out) / PAGE_STEM / RECORDS_FOLDER

    def done(self, label: str, seed: int) -> bool:
        """The row x seed needs no more training: it has a record, or a finished run folder to record."""
        return has_record(record_dir(self.records_dir, label, seed)) or finished(run_dir(self.runs_dir, label, seed))

    def data_root(self) -> str:
        root = self.data or os.environ.get(DATA_ENV)
        if not root:
            raise ConfigError(f"frugalseg bench needs --data (or ${DATA_ENV}): the folder of the data to train on")
        return root


@dataclass
class PlannedRow:
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

    def total_minutes(self, seeds: int | None = None, scale: float = 1.0, speedup: float = 1.0) -> float | None:
        """Estimated wall minutes of every run; ``None`` if a row has no estimate.

        Training (× ``scale``) is divided by ``speedup`` (:meth:`Estimates.speedup` of ``--jobs``);
        evaluation is not: with ``--jobs`` each child scores its own run side by side with the others, but
        the evaluation minutes were measured for one run alone, so they are counted in full (conservative).
        """
        if any(r.minutes is None for r in self.rows):
            return None
        n = len(self.seeds) if seeds is None else seeds
        training = n * sum((r.minutes or 0.0) * scale for r in self.rows)  # every row has minutes here
        return training / speedup + n * len(self.rows) * self.eval_minutes

    def remaining_minutes(self, speedup: float = 1.0) -> float | None:
        """Like :meth:`total_minutes` for the runs not finished yet."""
        if any(r.minutes is None for r in self.rows):
            return None
        left = [(len(self.seeds) - r.done, r.minutes or 0.0) for r in self.rows]  # every row has minutes here
        training = sum(n * minutes for n, minutes in left)
        return training / speedup + sum(n for n, _ in left) * self.eval_minutes


def plan_bench(matrix: Matrix, opts: BenchOptions) -> Plan:
    """Resolve every selected row's config (no data is read) and estimate its time."""
    if not opts.seeds:
        raise ConfigError("--seeds: give at least one seed")
    rows, shapes, iterations = [], [], set()
    for row in matrix.ordered_rows(opts.only):
        config = row_config(row, opts.data, opts.schedule, opts.seeds[0], opts.extra)
        shape = (f"{config.data.patch_size[0]}x{config.data.patch_size[1]}, batch {config.train.batch_size}, "
                 f"{config.train.iterations} iterations")
        shapes.append(shape)
        iterations.add(config.train.iterations)
        done = sum(opts.done(row.label, s) for s in opts.seeds)
        rows.append(PlannedRow(row, config.method.name, [b.name for b in matrix.budgets_of(row.label)],
                               matrix.estimates.minutes_for(config), done))
    common = iterations.pop() if len(iterations) == 1 else None
    return Plan(rows, list(opts.seeds), matrix.estimates.eval_minutes, list(dict.fromkeys(shapes)), common)


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
                     f"{', '.join(r.budgets)}: {r.row.spec}")
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
    speedup, step = est.speedup(jobs), 500
    base = plan.iterations  # the rows' estimates are for these iterations already
    for iterations in range(base - step, 0, -step) if base else ():
        scaled = plan.total_minutes(scale=iterations / (base or 1), speedup=speedup)  # base > 0 in this loop
        if scaled is not None and scaled <= limit:
            hints.append(f"  --set train.iterations={iterations}   (every row {iterations} iterations instead of "
                         f"{base}): {_hours(scaled)}")
            break
    for n in range(len(plan.seeds) - 1, 0, -1):
        fewer = plan.total_minutes(seeds=n, speedup=speedup)
        if fewer is not None and fewer <= limit:
            hints.append(f"  --seeds {' '.join(map(str, plan.seeds[:n]))}   ({n} seeds): {_hours(fewer)}")
            break
    return hints


def _check_existing(matrix: Matrix, opts: BenchOptions, data: str) -> None:
    """Before anything is trained: no record or run folder of the page holds another config than its row.

    A record is checked instead of its run folder (the record is what the page uses; the folder may be gone).
    """
    for row in matrix.ordered_rows():
        for seed in opts.seeds:
            config = row_config(row, data, opts.schedule, seed, opts.extra)
            record, path = record_dir(opts.records_dir, row.label, seed), run_dir(opts.runs_dir, row.label, seed)
            if has_record(record):
                check_record(record, config)
            elif finished(path) or (path / "checkpoints" / "last.pt").is_file():
                check_run(path, config)


def _record_finished(matrix: Matrix, opts: BenchOptions, data: str, log: Callable[[str], None]) -> None:
    """Record every finished run folder of the matrix that has no record yet (scored first if needed).

    These are runs of rows outside ``--only``, runs trained before records existed, or runs whose child was
    stopped between training and recording; the page is built from records only, so they get one now.
    """
    for row in matrix.ordered_rows():
        for seed in opts.seeds:
            record_finished_run(row, seed, data, opts.runs_dir, opts.records_dir, opts.schedule, opts.extra, log,
                                opts.device)


def _collect(matrix: Matrix, opts: BenchOptions, data: str, cost_model: CostModel) -> dict[str, RowResult]:
    """Every row of the matrix with its recorded seeds and its annotation cost, from the records alone.

    A record of another config than its row (another schedule or ``--set``) is an error here too: the page
    shows every row, not only the ones this invocation trained.
    """
    results = {}
    for row in matrix.ordered_rows():
        config = row_config(row, data, opts.schedule, opts.seeds[0], opts.extra)
        sim = config.data.simulate
        res = RowResult(row, config.method.name,
                        simulates=None if sim is None else (sim.budget if sim.kind == "budget" else sim.kind))
        for seed in opts.seeds:
            path = record_dir(opts.records_dir, row.label, seed)
            if has_record(path):
                check_record(path, row_config(row, data, opts.schedule, seed, opts.extra))
                res.records.append(read_record(path, CHECKPOINTS, row.label, seed))
        if res.records and res.records[0].counts is not None:
            res.cost = counts_cost(res.records[0].counts, cost_model)
        results[row.label] = res
    return results


def _write_csvs(results: dict[str, RowResult], folder: Path, cost_model: CostModel,
                page_dir: Path) -> dict[str, Path]:
    """One per-volume CSV per checkpoint (row and seed prepended to ``frugalseg eval``'s columns), and runs.csv."""
    written = {}
    for which in CHECKPOINTS:
        buf, writer = io.StringIO(), None
        for res in results.values():
            for record in res.records:
                with record.per_volume_csv(which).open(newline="") as fh:
                    for line in csv.DictReader(fh):
                        if writer is None:
                            writer = csv.DictWriter(buf, fieldnames=["row", "seed", *line], lineterminator="\n")
                            writer.writeheader()
                        writer.writerow({"row": res.row.label, "seed": record.seed, **line})
        if writer is not None:
            path = folder / f"per_volume_{which}.csv"
            write_text_atomic(path, buf.getvalue(), overwrite=True)
            written[f"per-volume scores of `{which}.pt` of every run (row, seed, then `frugalseg eval`'s columns)"] \
                = path
    buf = io.StringIO()
    runs_writer = csv.writer(buf, lineterminator="\n")
    runs_writer.writerow(["row", "method", "seed", "record", "run", "train_seconds", "annotation_seconds", "config"])
    for res in results.values():
        for record in res.records:
            cost = None if record.counts is None else counts_cost(record.counts, cost_model)
            runs_writer.writerow([res.row.label, res.method, record.seed, _relative(record.path, page_dir),
                                  record.run, f"{record.train_seconds:.0f}",
                                  "" if cost is None else f"{cost.seconds:.0f}", res.row.spec])
    path = folder / "runs.csv"
    write_text_atomic(path, buf.getvalue(), overwrite=True)
    written["every run: its record (beside this page), the run folder it was trained in, training seconds, "
            "annotation seconds, row spec"] = path
    return written


def _first_panel(records: Sequence[RunRecord]) -> Panel | None:
    """The panel of the first recorded seed that has one (the page says "the first seed's")."""
    for record in records:
        panel = record.panel()
        if panel is not None:
            return panel
    return None


def _panel_case(data: str, panel: Panel, log: Callable[[str], None]) -> Case | None:
    """The validation case a panel was predicted on, read from ``data`` (records keep only the predictions).

    ``None`` (logged) when the data no longer has that case with a reference, or its slices no longer fit.
    """
    from frugalseg.data.sources import open_source

    try:
        case = open_source(data).load_case(panel.case)
    except FrugalsegError as exc:
        log(f"no prediction panels: the recorded case {panel.case} cannot be read from {data} ({exc})")
        return None
    slices = list(panel.slices)
    if not slices or case.label is None or case.image.ndim != 3 or max(slices) >= case.image.shape[0] \
            or case.image[slices].shape != panel.labels.shape:
        log(f"no prediction panels: case {panel.case} of {data} does not fit the recorded predictions "
            f"(slices {slices}, shape {tuple(panel.labels.shape)})")
        return None
    return case


def _figures(matrix: Matrix, results: dict[str, RowResult], data: str, folder: Path, stem: str,
             log: Callable[[str], None]) -> dict[str, Path]:
    """Dice against cost (one point per recorded row) and one prediction panel per budget, from records.

    The panels' predictions come from the records; only the validation image and reference of their slices
    are read from ``data``. Every panel shows the case and slices of the first panel found; a record
    predicted on other slices (other data) is left out of its panel, with a line in the log.
    """
    from frugalseg.bench.figures import CostPoint, plot_dice_vs_cost, plot_prediction_panel
    from frugalseg.bench.tables import aggregate, metric_value

    figures: dict[str, Path] = {}
    points = []
    for label, res in results.items():
        summaries = res.summaries("last")
        if not summaries or res.cost is None:
            continue
        stats = aggregate([metric_value(s, "dice") for s in summaries])
        points.append(CostPoint(label, res.method, res.cost.seconds, res.cost.low, res.cost.high, stats.mean,
                                stats.std))
    if points:
        figures["dice_vs_cost"] = plot_dice_vs_cost(points, folder / f"{stem}_dice_vs_cost.png")

    panels = {label: panel for label, res in results.items() if (panel := _first_panel(res.records)) is not None}
    if not panels:
        return figures
    first = next(iter(panels.values()))
    case = _panel_case(data, first, log)
    if case is None or case.label is None:
        return figures
    for label, panel in panels.items():
        if (panel.case, panel.slices) != (first.case, first.slices):
            log(f"prediction panels: {label}'s record was predicted on {panel.case} slices {list(panel.slices)}, "
                f"not {first.case} slices {list(first.slices)}: left out")
    picks = list(first.slices)
    for budget in matrix.budgets:
        predictions = {label: panels[label].labels for label in budget.rows
                       if label in panels and (panels[label].case, panels[label].slices) == (first.case, first.slices)}
        if predictions:
            figures[f"predictions_{budget.name}"] = plot_prediction_panel(
                case.image[picks], case.label[picks], predictions,
                folder / f"{stem}_predictions_{budget.name}.png",
                title=f"{budget.name}: {case.case_id}, slices {', '.join(map(str, picks))} "
                      "(colours: class 1, 2, 3 = orange, green, red)",
            )
    return figures


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _train_in_process(plan: Plan, opts: BenchOptions, data: str, log: Callable[[str], None]) -> float:
    """``--jobs 1``: train, score and record the runs one after the other in this process; seconds training.

    A failure ends the bench at once (nothing else is running, so there is nothing to let finish).
    """
    trained = 0.0
    for planned in plan.rows:
        for seed in opts.seeds:
            t0 = time.perf_counter()
            if train_and_record(planned.row, seed, data, opts.runs_dir, opts.records_dir, opts.schedule, opts.extra,
                                strict=True, log=log, device=opts.device):
                trained += time.perf_counter() - t0
            else:
                log(f"[{planned.row.label} s{seed}] finished earlier: skipped")
    return trained


def _train_in_children(plan: Plan, opts: BenchOptions, data: str, devices: list[str] | None,
                       log: Callable[[str], None]) -> tuple[float, list[str]]:
    """``--jobs N``: train the unrecorded runs N at a time in child processes; wall seconds and failures.

    Each child decides train / skip / resume itself with ``train_and_record``, and scores and records its
    run (a finished run folder without a record only gets scored and recorded).
    """
    from frugalseg.bench.parallel import train_side_by_side, unfinished_jobs

    jobs = unfinished_jobs([planned.row for planned in plan.rows], opts.seeds, data, opts.runs_dir, opts.schedule,
                           extra=opts.extra, records=opts.records_dir, device=opts.device, log=log)
    seconds, failures = train_side_by_side(jobs, opts.jobs, devices, log)
    return seconds, [f.describe() for f in failures]


def _check_jobs(jobs: int) -> list[str] | None:
    """Validate ``--jobs`` before anything is trained; the GPU of each worker on a GPU machine (else ``None``)."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more")
    if jobs == 1:
        return None
    from frugalseg.bench.parallel import gpu_devices

    return gpu_devices(jobs)


def run_bench(opts: BenchOptions, log: Callable[[str], None] = print) -> Path:
    """Train the selected rows (skipping recorded runs), record them, then write the results page from records.

    Raises:
        BenchRunsFailedError: with ``--jobs`` > 1, some runs failed (after the page of the others is written).
    """
    from frugalseg.bench.provenance import git_commit, machine_description, utc_now

    matrix = load_matrix()
    cost_model = load_cost_model(opts.cost_model)
    papers = load_paper_results(budgets={b.name for b in matrix.budgets}, rows=set(matrix.rows))
    data = opts.data_root()
    devices = _check_jobs(opts.jobs)
    plan = plan_bench(matrix, dataclasses.replace(opts, data=data))
    _check_existing(matrix, opts, data)
    failed: list[str] = []
    trained = 0.0
    if opts.page_only:
        log("--page-only: nothing is trained")
    elif opts.jobs > 1:
        trained, failed = _train_in_children(plan, opts, data, devices, log)
    else:
        trained = _train_in_process(plan, opts, data, log)
    _record_finished(matrix, opts, data, log)
    results = _collect(matrix, opts, data, cost_model)
    page_dir, stem = Path(opts.out), PAGE_STEM
    out = page_dir / f"{stem}.md"
    data_files = _write_csvs(results, page_dir / stem, cost_model, page_dir)
    figures = _figures(matrix, results, data, page_dir / "figures", stem, log)
    argv = list(sys.argv[1:]) if opts.argv is None else list(opts.argv)
    shapes = plan_bench(matrix, dataclasses.replace(opts, data=data, only=None)).shapes
    header = Header(
        written=utc_now(), commit=git_commit(), machine=machine_description(opts.device),
        command=shlex.join(["frugalseg", *argv]), schedule=opts.schedule, schedule_shape="; ".join(shapes),
        seeds=list(opts.seeds), data=data, runs=opts.runs_dir.as_posix(), trained_now_seconds=trained,
        records=_relative(opts.records_dir, page_dir),
    )
    text = render_report(matrix, results, papers, cost_model, header,
                         {k: _relative(v, page_dir) for k, v in figures.items()},
                         {k: _relative(v, page_dir) for k, v in data_files.items()})
    write_text_atomic(out, text, overwrite=True)
    done = sum(len(r.records) for r in results.values())
    log(f"wrote {out} ({done} recorded runs of {len(matrix.rows) * len(opts.seeds)}; "
        f"{sum(1 for r in results.values() if r.records)} of {len(matrix.rows)} rows; records in "
        f"{opts.records_dir}, to commit with the page)")
    if failed:
        raise BenchRunsFailedError(
            f"{len(failed)} run(s) failed, the others finished and {out} shows them: {'; '.join(failed)}. "
            "Run the same command again to retry the failed runs (finished runs are skipped)")
    return out


def list_bench(opts: BenchOptions) -> str:
    """The ``--list`` text (no data is read, nothing is trained)."""
    matrix = load_matrix()
    return plan_text(plan_bench(matrix, opts), matrix, opts)
