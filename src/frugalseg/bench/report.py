"""``docs/results.md`` from run records: header, one section per budget, the papers' numbers apart, figures.

Everything on the page is computed from files (the runs' records with their evaluation summaries and
annotation counts, the cost model, the papers' numbers file, the matrix's notes, and the tables that scripts
write beside the page for a budget's ``include``); nothing is typed, and no run folder is read,
so the page is rebuilt from committed files alone. A row that has not finished yet is listed as pending, so
the page can be regenerated and committed, with its records, while a long bench is still running.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from frugalseg.bench.cost import Cost, CostModel
from frugalseg.bench.matrix import Budget, Matrix, Row
from frugalseg.bench.papers import PaperEntry, PaperResults
from frugalseg.bench.records import RunRecord
from frugalseg.bench.tables import (
    METRICS,
    SeedStats,
    aggregate,
    class_names,
    markdown_table,
    metric_cells,
    metric_columns,
    metric_value,
    metrics_table,
)

__all__ = ["Header", "RowResult", "render_report"]

MAIN = "last"
"""Checkpoint of the main tables: the last iteration's weights (no selection on the validation volumes)."""

APPENDIX = "best"


@dataclass
class RowResult:
    """A row of the matrix with its finished seeds and the cost of its annotation file."""

    row: Row
    method: str
    records: list[RunRecord] = field(default_factory=list)
    cost: Cost | None = None
    simulates: str | None = None
    """The budget file (or annotation kind) the row simulates: the row's own budget; others only borrow it."""

    def summaries(self, which: str) -> list[dict]:
        return [r.summaries[which] for r in self.records if which in r.summaries]

    def dice(self, which: str = MAIN) -> float:
        return self.dice_stats(which).mean

    def dice_stats(self, which: str = MAIN) -> SeedStats:
        """Mean ± sample std over the finished seeds of each seed's mean Dice."""
        return aggregate([metric_value(s, "dice") for s in self.summaries(which)])


def against_baseline(method: SeedStats, baseline: SeedStats) -> str:
    """The Δ cell: method minus baseline mean Dice, and whether their mean ± std ranges lie apart.

    ``above`` or ``below`` when the two rows' ranges (mean ± sample std over seeds) do not overlap, ``within
    ± std`` when they do: a row that only wins inside the seeds' spread is not said to beat its baseline. With
    one seed on either side there is no range, and the cell is the difference alone.
    """
    delta = f"{method.mean - baseline.mean:+.3f}"
    if method.std is None or baseline.std is None:
        return delta
    if method.mean - method.std > baseline.mean + baseline.std:
        return f"{delta}, above"
    if method.mean + method.std < baseline.mean - baseline.std:
        return f"{delta}, below"
    return f"{delta}, within ± std"


@dataclass
class Header:
    """What the page says about how it was made."""

    written: str
    commit: str
    machine: str
    command: str
    schedule: str
    schedule_shape: str
    seeds: Sequence[int]
    data: str
    runs: str
    trained_now_seconds: float = 0.0
    records: str = ""
    """The records' folder relative to the page (empty: not said)."""


def _seconds(value: float) -> str:
    return f"{value:,.0f} s ({value / 3600:.1f} h)"


def _counts_text(cost: Cost) -> str:
    c = cost.counts
    parts = [(c.masks, "slices with full masks"), (c.points, "clicks"), (c.scribbles, "scribbles"),
             (c.boxes, "boxes"), (c.tagged, "slices with tags")]
    return ", ".join(f"{n:,} {what}" for n, what in parts if n)


def _header(h: Header, results: Mapping[str, RowResult]) -> list[str]:
    total = sum(r.train_seconds for res in results.values() for r in res.records if math.isfinite(r.train_seconds))
    runs = sum(len(res.records) for res in results.values())
    return [
        "# Results",
        "",
        "<!-- Written by `frugalseg bench`; do not edit by hand: run the command below again. -->",
        "",
        f"Written by `frugalseg bench` on {h.written} at commit {h.commit}.",
        "",
        f"- machine: {h.machine}",
        f"- schedule: `{h.schedule}` ({h.schedule_shape}); seeds {' '.join(map(str, h.seeds))}",
        f"- data: `{h.data}`; runs: `{h.runs}`" + (f"; records (the page's sole input, committed): "
                                                   f"[`{h.records}`]({h.records})" if h.records else ""),
        f"- training time of the {runs} runs on this page: {_seconds(total)}; trained by this invocation: "
        f"{_seconds(h.trained_now_seconds)}",
        "",
        "```",
        h.command,
        "```",
        "",
        "Each row is one method trained on one annotation budget with each seed, scored on the data's validation "
        "volumes per volume and per class, then averaged (docs/evaluation.md). A cell is the mean ± sample std "
        "over seeds of each seed's mean over volumes; the Δ column says `above` or `below` the budget's baseline "
        "only where the two rows' mean ± std ranges do not overlap. Main tables score `last.pt` (no checkpoint "
        "selection); the appendix scores `best.pt`, selected on the same validation volumes (optimistic). The "
        "`quick` schedule is a reduced one (a 2-core CPU trains a row in minutes): its numbers are below what the "
        "papers' schedules reach and are meant to rank methods under the same budget, not to reproduce the papers.",
        "",
    ]


def _cost_model_section(model: CostModel) -> list[str]:
    rows = []
    for kind, entry in model:
        rows.append([kind, f"{entry.seconds:g}", f"{entry.low:g}–{entry.high:g}", entry.unit, entry.rests_on])
    return [
        "## Annotation cost model",
        "",
        "Each run's cost is counted from its own `annotations.json` (the counts are kept in its record): every "
        "mask, click, box, scribble and tagged slice it holds, times the seconds below (K = the number of "
        "foreground classes). The sources and how the "
        "defaults were derived: [annotation-cost.md](annotation-cost.md). The scribble, click and tag figures rest "
        "on unverified or extrapolated timings; treat them as assumptions. Ranges are drawn in the figure.",
        "",
        *markdown_table(["annotation", "seconds", "range", "unit", "rests on"], rows),
        "",
    ]


def _budget_cost(budget: Budget, results: Mapping[str, RowResult]) -> Cost | None:
    """The cost of the budget's own annotation file, from a finished row that simulates it (not a borrowed one)."""
    costs = [results[label].cost for label in budget.rows
             if results[label].cost is not None and results[label].simulates == budget.budget]
    return costs[0] if costs else None


def _budget_table(budget: Budget, results: Mapping[str, RowResult], seeds: Sequence[int], which: str) -> list[str]:
    done = [label for label in budget.rows if results[label].summaries(which)]
    if not done:
        return []
    classes = class_names(results[done[0]].summaries(which))
    reference = budget.baselines[0] if budget.baselines else None
    ref_dice = results[reference].dice_stats(which) if reference in done else None
    rows = []
    for label in done:
        res = results[label]
        summaries = res.summaries(which)
        n = f"{len(summaries)}" if len(summaries) == len(seeds) else f"{len(summaries)}/{len(seeds)}"
        cost = f"{res.cost.seconds:,.0f}" if res.cost else "—"
        if ref_dice is None or label == reference:
            delta = "—"
        else:
            delta = against_baseline(res.dice_stats(which), ref_dice)
        minutes = [r.train_seconds / 60 for r in res.records if math.isfinite(r.train_seconds)]
        train = f"{sum(minutes) / len(minutes):.1f}" if minutes else "—"
        role = "baseline" if label in budget.baselines else "method"
        rows.append([label, res.method, role, n, cost, *metric_cells(summaries, classes), delta, train])
    head = ["row", "method", "role", "seeds", "annotation (s)", *metric_columns(classes),
            f"Δ dice mean vs {reference}" if reference else "Δ dice mean", "train (min)"]
    return markdown_table(head, rows)


def _paper_value(entry: PaperEntry, metric: str, cls: str, unit: str) -> str:
    values = getattr(entry, metric)
    if cls not in values:
        return ""
    suffix = " %" if metric == "dice" and unit == "percent" else ""
    return f"{values[cls]:g}{suffix}"


def _papers_section(budget: Budget, papers: PaperResults, classes: Sequence[str]) -> list[str]:
    entries = papers.for_budget(budget.name)
    lines: list[str] = []
    if entries:
        metrics = [m for m in ("dice", "hd95", "asd") if any(getattr(e, m) for e in entries)]
        head = ["paper's method", "beside our row", *metric_columns(classes, metrics), "source"]
        rows = []
        for e in entries:
            unit = papers.sources[e.source].dice_unit
            cells = [_paper_value(e, m, c, unit) for m in metrics for c in [*classes, "mean"]]
            rows.append([e.method, e.row or "— (context)", *cells, f"[{e.source}]"])
        lines += [
            "**The papers' own numbers**: their split, schedule and units (DSC in % where marked; distances in "
            "voxels), not ours, and mostly from secondary sources; context, not a like-for-like comparison:",
            "",
            *markdown_table(head, rows),
            "",
        ]
        for key in dict.fromkeys(e.source for e in entries):
            s = papers.sources[key]
            lines.append(f"- [{key}] {s.citation}; {s.table}. Split: {s.split}. Schedule: {s.schedule}. "
                         f"Provenance: {s.provenance} (copied from the method brief {s.shared_doc}).")
        lines.append("")
    if budget.name in papers.missing:
        lines += [f"No reported numbers: {papers.missing[budget.name]}", ""]
    return lines


def _notes(budget: Budget, notes: Mapping[str, str]) -> list[str]:
    """The matrix's caveats on the budget's rows, one bullet each (none: no lines)."""
    noted = [label for label in budget.rows if label in notes]
    if not noted:
        return []
    return ["**Read with care**:", "", *[f"- `{label}`: {notes[label].strip()}" for label in noted], ""]


def _budget_section(budget: Budget, results: Mapping[str, RowResult], papers: PaperResults, seeds: Sequence[int],
                    figures: Mapping[str, str], notes: Mapping[str, str], insert: str | None) -> list[str]:
    lines = [f"## {budget.name}: {budget.title}", ""]
    cost = _budget_cost(budget, results)
    if cost is not None:
        lines += [f"Annotation cost of the budget: **{_seconds(cost.seconds)}** of annotator time (range "
                  f"{cost.low:,.0f}–{cost.high:,.0f} s): {_counts_text(cost)}. A row borrowed from another budget "
                  "(a masks-only baseline) counts in `annotation (s)` only the annotations it was trained on.", ""]
    else:
        lines += ["Annotation cost of the budget: known once a row trained on its own annotation file has "
                  "finished.", ""]
    table = _budget_table(budget, results, seeds, MAIN)
    lines += table + ([""] if table else ["No row of this budget has finished yet.", ""])
    lines += _notes(budget, notes)
    if insert:
        lines += [insert.strip(), ""]
    pending = [f"{label} ({len(results[label].records)} of {len(seeds)} seeds)" for label in budget.rows
               if len(results[label].records) < len(seeds)]
    if pending:
        lines += [f"Not finished yet: {', '.join(pending)}.", ""]
    done = [label for label in budget.rows if results[label].summaries(MAIN)]
    classes = class_names(results[done[0]].summaries(MAIN)) if done else ["RV", "Myo", "LV"]
    lines += _papers_section(budget, papers, classes)
    key = f"predictions_{budget.name}"
    if key in figures:
        lines += ["Predictions of the first seed's `last.pt` of each row on the same validation slices:", "",
                  f"![predictions, {budget.name}]({figures[key]})", ""]
    return lines


def _appendix(matrix: Matrix, results: Mapping[str, RowResult]) -> list[str]:
    lines = [f"## Appendix: `{APPENDIX}.pt`", "",
             "The same runs scored at the checkpoint with the best validation Dice (selected on the volumes that "
             "also score it, as the SSL4MIS scripts do)."
             + (" The notes under the main tables (\"Read with care\") apply here too." if matrix.notes else ""), ""]
    for budget in matrix.budgets:
        done = {label: results[label].summaries(APPENDIX) for label in budget.rows
                if results[label].summaries(APPENDIX)}
        if done:
            lines += [f"**{budget.name}**", "", *metrics_table(done, METRICS), ""]
    return lines


def render_report(
    matrix: Matrix,
    results: Mapping[str, RowResult],
    papers: PaperResults,
    cost_model: CostModel,
    header: Header,
    figures: Mapping[str, str],
    data_files: Mapping[str, str],
    inserts: Mapping[str, str] | None = None,
) -> str:
    """The Markdown page.

    Args:
        matrix: the budgets, in table order, and the notes on their rows.
        results: every row of the matrix by label (rows without finished seeds included: listed as pending).
        papers: the papers' numbers.
        cost_model: the cost model used for the ``annotation (s)`` column.
        header: date, commit, machine, command, schedule.
        figures: figure paths relative to the page (``dice_vs_cost``, ``predictions_<budget>``).
        data_files: raw-data files relative to the page, by a description.
        inserts: Markdown printed under a budget's table, by budget name (its ``include`` file, read by
            :mod:`frugalseg.bench.results_page`).
    """
    lines = _header(header, results)
    units = next((s.get("units") for res in results.values() for s in res.summaries(MAIN)), None)
    if units:
        lines += [f"HD95 and ASD are in {units} units of each volume's stored grid.", ""]
    if "dice_vs_cost" in figures:
        lines += ["![Dice against annotation cost](" + figures["dice_vs_cost"] + ")", ""]
    for budget in matrix.budgets:
        lines += _budget_section(budget, results, papers, header.seeds, figures, matrix.notes,
                                 (inserts or {}).get(budget.name))
    lines += _cost_model_section(cost_model)
    if data_files:
        lines += ["## Raw data", ""]
        lines += [f"- [{path}]({path}): {what}" for what, path in data_files.items()]
        lines.append("")
    lines += _appendix(matrix, results)
    return "\n".join(lines).rstrip() + "\n"
