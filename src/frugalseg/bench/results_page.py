"""``docs/results.md``, its CSVs and its figures, written from the records of the matrix's rows.

::

    <out>/results.md                     the results page (``--out`` is a folder, default ``docs``)
    <out>/figures/results_*.png          Dice against annotation cost; predictions per budget
    <out>/results/per_volume_*.csv       every run's per-volume scores (row and seed prepended)
    <out>/results/runs.csv               every run: record, run folder, training seconds, annotation seconds
    <out>/results/runs/<label>-s<seed>/  the records (the store every page reads)

Nothing here trains or scores: the page is rendered (:mod:`frugalseg.bench.report`) from the rows' records,
the cost model and the papers' numbers; only the validation image and reference of the prediction panels'
slices are read from the data.
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from frugalseg.bench.cost import CostModel, counts_cost
from frugalseg.bench.matrix import Matrix
from frugalseg.bench.options import PAGE_STEM, BenchOptions
from frugalseg.bench.papers import PaperResults
from frugalseg.bench.records import Panel, RunRecord
from frugalseg.bench.report import Header, RowResult, render_report
from frugalseg.bench.runner import CHECKPOINTS
from frugalseg.data.types import Case
from frugalseg.errors import FrugalsegError
from frugalseg.files import write_text_atomic

__all__ = ["included", "relative", "write_results_page"]

Log = Callable[[str], None]


def write_results_page(matrix: Matrix, results: Mapping[str, RowResult], opts: BenchOptions, data: str,
                       cost_model: CostModel, papers: PaperResults, shapes: Sequence[str], trained: float,
                       log: Log = print) -> Path:
    """Write ``<out>/results.md`` with its CSVs and figures from ``results``; return the page's path."""
    from frugalseg.bench.provenance import git_commit, machine_description, utc_now

    page_dir = Path(opts.out)
    out = page_dir / f"{PAGE_STEM}.md"
    data_files = _write_csvs(results, page_dir / PAGE_STEM, cost_model, page_dir)
    figures = _figures(matrix, results, data, page_dir / "figures", PAGE_STEM, log)
    argv = list(sys.argv[1:]) if opts.argv is None else list(opts.argv)
    header = Header(
        written=utc_now(), commit=git_commit(), machine=machine_description(opts.device),
        command=shlex.join(["frugalseg", *argv]), schedule=opts.schedule, schedule_shape="; ".join(shapes),
        seeds=list(opts.seeds), data=data, runs=opts.runs_dir.as_posix(), trained_now_seconds=trained,
        records=relative(opts.records_dir, page_dir),
    )
    text = render_report(matrix, dict(results), papers, cost_model, header,
                         {k: relative(v, page_dir) for k, v in figures.items()},
                         {k: relative(v, page_dir) for k, v in data_files.items()}, included(matrix, page_dir))
    write_text_atomic(out, text, overwrite=True)
    done = sum(len(r.records) for r in results.values())
    log(f"wrote {out} ({done} recorded runs of {len(matrix.rows) * len(opts.seeds)}; "
        f"{sum(1 for r in results.values() if r.records)} of {len(matrix.rows)} rows; records in "
        f"{opts.records_dir}, to commit with the page)")
    return out


def included(matrix: Matrix, page_dir: Path) -> dict[str, str]:
    """Each budget's ``include`` file (a table a script writes beside the page), or a line saying it is not yet.

    The file is printed as it is: the script that writes it says in it how it was made.
    """
    inserts = {}
    for budget in matrix.budgets:
        if budget.include:
            path = page_dir / budget.include
            inserts[budget.name] = (path.read_text(encoding="utf-8") if path.is_file() else
                                    f"`{budget.include}`, which this section includes, is not written yet.")
    return inserts


def _write_csvs(results: Mapping[str, RowResult], folder: Path, cost_model: CostModel,
                page_dir: Path) -> dict[str, Path]:
    """One per-volume CSV per checkpoint (row and seed prepended to ``frugalseg eval``'s columns), and runs.csv."""
    written = {}
    for which in CHECKPOINTS:
        text = _per_volume_csv(results, which)
        if text is not None:
            path = folder / f"per_volume_{which}.csv"
            write_text_atomic(path, text, overwrite=True)
            written[f"per-volume scores of `{which}.pt` of every run (row, seed, then `frugalseg eval`'s columns)"] \
                = path
    path = folder / "runs.csv"
    write_text_atomic(path, _runs_csv(results, cost_model, page_dir), overwrite=True)
    written["every run: its record (beside this page), the run folder it was trained in, training seconds, "
            "annotation seconds, row spec"] = path
    return written


def _per_volume_csv(results: Mapping[str, RowResult], which: str) -> str | None:
    """Every record's per-volume scores of ``which``.pt, row and seed prepended; ``None`` without any."""
    buf, writer = io.StringIO(), None
    for res in results.values():
        for record in res.records:
            with record.per_volume_csv(which).open(newline="") as fh:
                for line in csv.DictReader(fh):
                    if writer is None:
                        writer = csv.DictWriter(buf, fieldnames=["row", "seed", *line], lineterminator="\n")
                        writer.writeheader()
                    writer.writerow({"row": res.row.label, "seed": record.seed, **line})
    return None if writer is None else buf.getvalue()


def _runs_csv(results: Mapping[str, RowResult], cost_model: CostModel, page_dir: Path) -> str:
    """One line per recorded run: row, method, seed, record, run folder, training and annotation seconds, spec."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", "method", "seed", "record", "run", "train_seconds", "annotation_seconds", "config"])
    for res in results.values():
        for record in res.records:
            cost = None if record.counts is None else counts_cost(record.counts, cost_model)
            writer.writerow([res.row.label, res.method, record.seed, relative(record.path, page_dir), record.run,
                             f"{record.train_seconds:.0f}", "" if cost is None else f"{cost.seconds:.0f}",
                             res.row.spec])
    return buf.getvalue()


def _first_panel(records: Sequence[RunRecord]) -> Panel | None:
    """The panel of the first recorded seed that has one (the page says "the first seed's")."""
    for record in records:
        panel = record.panel()
        if panel is not None:
            return panel
    return None


def _panel_case(data: str, panel: Panel, log: Log) -> Case | None:
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


def _figures(matrix: Matrix, results: Mapping[str, RowResult], data: str, folder: Path, stem: str,
             log: Log) -> dict[str, Path]:
    """Dice against cost (one point per recorded row) and one prediction panel per budget, from records."""
    figures: dict[str, Path] = {}
    cost = _cost_figure(results, folder / f"{stem}_dice_vs_cost.png")
    if cost is not None:
        figures["dice_vs_cost"] = cost
    return figures | _prediction_figures(matrix, results, data, folder, stem, log)


def _cost_figure(results: Mapping[str, RowResult], path: Path) -> Path | None:
    """Mean Dice of ``last.pt`` against the annotation cost, one point per row with records and a cost."""
    from frugalseg.bench.figures import CostPoint, plot_dice_vs_cost
    from frugalseg.bench.tables import aggregate, metric_value

    points = []
    for label, res in results.items():
        summaries = res.summaries("last")
        if not summaries or res.cost is None:
            continue
        stats = aggregate([metric_value(s, "dice") for s in summaries])
        points.append(CostPoint(label, res.method, res.cost.seconds, res.cost.low, res.cost.high, stats.mean,
                                stats.std))
    return plot_dice_vs_cost(points, path) if points else None


def _prediction_figures(matrix: Matrix, results: Mapping[str, RowResult], data: str, folder: Path, stem: str,
                        log: Log) -> dict[str, Path]:
    """One prediction panel per budget: its rows' recorded predictions on the first panel's case and slices.

    The panels' predictions come from the records; only the validation image and reference of their slices
    are read from ``data``. A record predicted on other slices (other data) is left out of its panel, with a
    line in the log.
    """
    from frugalseg.bench.figures import plot_prediction_panel

    panels = {label: panel for label, res in results.items() if (panel := _first_panel(res.records)) is not None}
    if not panels:
        return {}
    first = next(iter(panels.values()))
    case = _panel_case(data, first, log)
    if case is None or case.label is None:
        return {}
    for label, panel in panels.items():
        if (panel.case, panel.slices) != (first.case, first.slices):
            log(f"prediction panels: {label}'s record was predicted on {panel.case} slices {list(panel.slices)}, "
                f"not {first.case} slices {list(first.slices)}: left out")
    picks, figures = list(first.slices), {}
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


def relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` in POSIX form (the links of a page to its files)."""
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
