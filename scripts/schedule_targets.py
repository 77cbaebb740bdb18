"""Issue #21's targets for the CPU schedule, checked from the bench's records: a table and a figure.

The targets say what the ``quick`` schedule must reach on the ACDC validation volumes (``last.pt``, mean of
3 seeds) and how long a run may take, so that the bench ranks methods by what they reach, not by how fast
they start. Their evidence is the bench's own rows (``supervised``, ``supervised7``, ``supervised3``,
``mean_teacher7``, ``mean_teacher3``, ``dii_dcr``): this script reads their committed records, never a number
typed by hand, and writes

- the ``<!-- schedule_targets -->`` block of ``docs/performance.md``: each target with the measured value
  (mean ± sample std over the seeds recorded), the seeds it rests on and a verdict; then each row's validation
  curve at a few iterations (mean over seeds) and its gain over the last 500 iterations, which says whether
  a row that falls short has flattened or was still rising when the schedule stopped;
- ``docs/figures/schedule_targets.png``: validation Dice against iteration for those rows, mean ± std band.

The time targets are about a run alone on the 2-core CPU: ``benchmarks/method_throughput.py --json`` measures
each method's images/s on a quiet machine and the minutes of a whole run at that speed; the records' own
training minutes (two runs side by side, other work beside) only bound them from above.

A row with fewer than 3 seeds is reported as it stands and its verdict says how many seeds are left: the
bench is re-run over several sessions (``frugalseg bench --list`` says what is left).

Records written before 2026-12-06 hold no validation curve; ``--backfill-curves`` copies a record's curve
from the run folder it names when that folder still holds the very run (same ``config.json``).

    python scripts/schedule_targets.py --records docs/results/runs --before docs/results/archive/quick-2000it \\
        --page docs/performance.md --figure docs/figures/schedule_targets.png \\
        --throughput docs/performance/method_throughput.json [--backfill-curves]
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from frugalseg.bench.records import VALIDATION_LOG, RunRecord, SeedMean, mean_over_seeds, read_record, row_record_dirs
from frugalseg.bench.tables import SeedStats, aggregate, metric_value
from frugalseg.files import replace_marked_block

SEEDS_NEEDED = 3
"""The targets are means of 3 seeds (issue #21)."""

CURVE_ROWS: tuple[str, ...] = ("supervised", "supervised7", "supervised3", "mean_teacher7", "mean_teacher3")
"""Rows whose validation curves the block and the figure show."""

CURVE_POINTS: tuple[int, ...] = (500, 1000, 2000, 3000)
"""Iterations at which the curve table reads each curve, beside its last point."""


@dataclass(frozen=True)
class Target:
    """One target of issue #21: a floor on one row's Dice, a row above another, or a ceiling on minutes."""

    text: str
    row: str
    floor: float | None = None
    above: str | None = None
    max_minutes: float | None = None


TARGETS: tuple[Target, ...] = (
    Target("supervised, all masks: Dice >= 0.89", "supervised", floor=0.89),
    Target("supervised, 7 patients: Dice >= 0.80", "supervised7", floor=0.80),
    Target("supervised, 3 patients: Dice >= 0.55", "supervised3", floor=0.55),
    Target("mean teacher above supervised, 7 patients", "mean_teacher7", above="supervised7"),
    Target("mean teacher above supervised, 3 patients", "mean_teacher3", above="supervised3"),
    Target("a single-network run: <= 20 min", "supervised", max_minutes=20.0),
    Target("a DII + DCR run (two networks): <= 45 min", "dii_dcr", max_minutes=45.0),
)
"""The targets as issue #21 states them (its thresholds, not results)."""


def read_rows(folder: Path, rows: Sequence[str]) -> dict[str, list[RunRecord]]:
    """The records of ``rows`` in a record store, by row, in seed order (rows without records are absent)."""
    found = {row: [read_record(p) for p in row_record_dirs(folder, row)] for row in rows}
    return {row: records for row, records in found.items() if records}


def last_dice(records: Sequence[RunRecord]) -> SeedStats:
    """Mean ± std over seeds of the mean validation Dice of ``last.pt`` (the bench's protocol)."""
    return aggregate([metric_value(r.summaries["last"], "dice") for r in records])


def minutes(records: Sequence[RunRecord]) -> str:
    """Training minutes per run (evaluation excluded), mean ± std over seeds, to a tenth of a minute."""
    stats = aggregate([r.train_seconds / 60.0 for r in records])
    return f"{stats.mean:.1f}" + ("" if stats.std is None else f" ± {stats.std:.1f}") + " min"


def _seeds_left(records: Sequence[RunRecord]) -> str:
    left = SEEDS_NEEDED - len(records)
    return f"; {left} of {SEEDS_NEEDED} seeds still to run" if left > 0 else ""


def _time_verdict(target: Target, records: Sequence[RunRecord], alone: dict[str, float]) -> tuple[str, str, str]:
    """A time target: decided by the minutes of a run alone when measured, else by the records' upper bound."""
    assert target.max_minutes is not None
    beside = (minutes(records) if records else "not run") + " beside another run (bench records)"
    if target.row in alone:
        measured = f"{alone[target.row]:.1f} min alone (`method_throughput.py`); {beside}"
        return measured, str(len(records)), "met" if alone[target.row] <= target.max_minutes else "not met"
    if max(r.train_seconds for r in records) / 60.0 <= target.max_minutes:
        return beside, str(len(records)), "met" + _seeds_left(records)
    return beside, str(len(records)), ("open: above the limit beside another run, an upper bound of a run alone "
                                       "(a quiet `benchmarks/method_throughput.py --json` decides)")


def read_alone_minutes(path: Path) -> dict[str, float]:
    """Minutes of a whole run alone per row, from ``method_throughput.py --json`` (``{}`` without the file).

    A time target's row is named like the method it trains (``supervised``, ``dii_dcr``); a smoke run of the
    script (the bundled sample) measures nothing and is ignored."""
    if not path.is_file():
        return {}
    tree = json.loads(path.read_text(encoding="utf-8"))
    if tree.get("smoke"):
        return {}
    return {name: float(r["run_minutes"]) for name, r in tree["methods"].items() if "run_minutes" in r}


def verdict(target: Target, rows: dict[str, list[RunRecord]],
            alone: dict[str, float] | None = None) -> tuple[str, str, str]:
    """(measured, seeds, verdict) cells of one target; a target without records is open.

    ``alone``: minutes of a whole run alone on the machine, by row (:func:`read_alone_minutes`)."""
    records = rows.get(target.row, [])
    other = rows.get(target.above, []) if target.above else []
    alone = alone or {}
    if target.max_minutes is not None and (records or target.row in alone):
        return _time_verdict(target, records, alone)
    if not records or (target.above and not other):
        return "not run yet", "0", "open"
    stats = last_dice(records)
    if target.above:
        base = last_dice(other)
        diff = stats.mean - base.mean
        measured = f"{stats} against {base} ({diff:+.3f})"
        seeds = f"{stats.n} + {base.n}"
        return measured, seeds, ("met" if diff > 0 else "not met") + _seeds_left(records) + _seeds_left(other)
    assert target.floor is not None
    short = target.floor - stats.mean
    word = "met" if short <= 0 else f"not met: {short:.3f} short"
    return str(stats), str(stats.n), word + _seeds_left(records)


def mean_curve(records: Sequence[RunRecord]) -> SeedMean:
    """The records' validation curves averaged over the seeds that hold one (each record's file read once)."""
    return mean_over_seeds([r.validation_curve() for r in records])


def mean_curves(rows: dict[str, list[RunRecord]]) -> dict[str, SeedMean]:
    """:func:`mean_curve` of each of :data:`CURVE_ROWS` that has a curve, in that order (table and figure share it)."""
    curves = {row: mean_curve(rows.get(row, [])) for row in CURVE_ROWS}
    return {row: curve for row, curve in curves.items() if len(curve.iterations)}


def curve_rows(curves: dict[str, SeedMean]) -> list[str]:
    """Markdown rows: each row's mean validation Dice at :data:`CURVE_POINTS` and at its end, and its last gain."""
    lines = []
    for row, curve in curves.items():
        its, mean = curve.iterations.tolist(), curve.mean["dice"]
        at = dict(zip(its, mean.tolist()))
        cells = [f"{at[i]:.3f}" if i in at else "" for i in CURVE_POINTS]
        gain = at[its[-1]] - at[its[-1] - 500] if its[-1] - 500 in at else float("nan")
        lines.append(f"| {row} | {curve.seeds} | " + " | ".join(cells)
                     + f" | {mean[-1]:.3f} ({its[-1]}) | {gain:+.3f} |")
    return lines


def block(rows: dict[str, list[RunRecord]], curves: dict[str, SeedMean], before: dict[str, list[RunRecord]],
          command: str, alone: dict[str, float] | None = None) -> str:
    """The ``schedule_targets`` block: the targets' table, the curves' table and the figure."""
    lines = [f"Written by `{command}` from the bench's records; do not edit by hand.", "",
             "| target | measured (`last.pt`, mean ± std over seeds) | seeds | verdict "
             "| former schedule (2000 it, SGD) |",
             "| --- | --- | --- | --- | --- |"]
    for target in TARGETS:
        measured, seeds, word = verdict(target, rows, alone)
        old = "" if target.max_minutes is not None else verdict(target, before)[0]
        lines.append(f"| {target.text} | {measured} | {seeds} | {word} | {old} |")
    lines += ["", "Minutes alone: a whole run of the schedule at the images/s `benchmarks/method_throughput.py "
              "--json` measured (its block above says when and on what). Minutes beside another run: the training "
              "minutes of the records (`summary.json`, evaluation excluded); the bench trains two runs side by side "
              "with one thread each (`--jobs 2`) and other work may share the machine, so they only bound a run "
              "alone from above.", "",
              "Validation Dice along each row's curve (mean over the seeds whose records hold a curve; validation "
              "every 500 iterations on `last` weights):", "",
              "| row | curves | " + " | ".join(f"it {i}" for i in CURVE_POINTS) + " | at end (it) | last 500 it |",
              "| --- | --- | " + " | ".join("---" for _ in CURVE_POINTS) + " | --- | --- |",
              *curve_rows(curves), "",
              "![schedule targets](figures/schedule_targets.png)"]
    return "\n".join(lines)


def plot(curves: dict[str, SeedMean], figure: Path) -> None:
    """Validation Dice against iteration, one line per row with a ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row, curve in curves.items():
        its, mean, std = curve.iterations, curve.mean["dice"], curve.std["dice"]
        (line,) = ax.plot(its, mean, marker="o", label=f"{row} ({curve.seeds} seeds)")
        ax.fill_between(its, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    for target in TARGETS:
        if target.floor is not None:
            ax.axhline(target.floor, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("iteration (quick schedule: AdamW, cosine to 0 at the last)")
    ax.set_ylabel("validation Dice (mean of RV, Myo, LV)")
    ax.set_title("ACDC validation Dice along the CPU schedule (dotted: issue #21's floors)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def backfill_curves(folder: Path, rows: Sequence[str], log: Callable[[str], None] = print) -> None:
    """Copy the validation curve into records that lack it, from the run folder each names, if it is that run."""
    for records in read_rows(folder, rows).values():
        for record in records:
            source = Path(record.run) / VALIDATION_LOG
            if (record.path / VALIDATION_LOG).exists() or not source.is_file():
                continue
            if record.same_run_folder() is None:
                log(f"{record.path}: {record.run} holds another run (its config.json differs): curve not copied")
                continue
            shutil.copyfile(source, record.path / VALIDATION_LOG)
            log(f"{record.path}: validation curve copied from {source}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=Path("docs/results/runs"))
    parser.add_argument("--before", type=Path, default=Path("docs/results/archive/quick-2000it"),
                        help="records of the former schedule, for the comparison column")
    parser.add_argument("--page", type=Path, default=Path("docs/performance.md"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/schedule_targets.png"))
    parser.add_argument("--backfill-curves", action="store_true")
    parser.add_argument("--throughput", type=Path, default=Path("docs/performance/method_throughput.json"),
                        help="`benchmarks/method_throughput.py --json` output: the minutes of a run alone")
    args = parser.parse_args(argv)
    names = sorted({t.row for t in TARGETS} | {t.above for t in TARGETS if t.above})
    if args.backfill_curves:
        backfill_curves(args.records, names)
    rows, before = read_rows(args.records, names), read_rows(args.before, names)
    command = "python scripts/schedule_targets.py" + (" --backfill-curves" if args.backfill_curves else "")
    curves = mean_curves(rows)
    plot(curves, args.figure)
    alone = read_alone_minutes(args.throughput)
    replace_marked_block(args.page, "schedule_targets", block(rows, curves, before, command, alone))
    print(f"wrote the schedule_targets block of {args.page} and {args.figure}")


if __name__ == "__main__":
    main()
