"""The active-learning loop's figure and table, written from the round records alone.

Per strategy and round: the annotator-minutes of what that round trained on (the cost model applied to
the record's annotation counts) and the validation Dice of ``last.pt``, mean ± sample std over seeds.
Δ vs random is paired by seed (each seed's strategy Dice minus the same seed's random Dice, at the same
round), so that the seed-to-seed spread both trajectories share does not hide or fake a difference; its
95 % confidence interval (Student t over seeds) says how large a difference the seeds could resolve, and a
line per strategy pools the rounds (:func:`pooled_delta`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalseg.bench.active_learning import LoopOptions, RoundRecord
from frugalseg.bench.cost import AnnotationCounts, CostModel, counts_cost
from frugalseg.bench.tables import SeedStats, aggregate, markdown_table

__all__ = ["BLOCK", "CurvePoint", "by_strategy_round", "curve_points", "page_block", "plot_curves", "pooled_delta"]

BLOCK = "active-learning-results"
"""The marked block of docs/active-learning.md that the loop rewrites."""

FIGURE = "active_learning_dice_vs_minutes.png"


@dataclass(frozen=True)
class CurvePoint:
    """One strategy at one round, over its seeds."""

    strategy: str
    round: int
    slices: float
    minutes: SeedStats
    dice: SeedStats
    delta: SeedStats | None
    seeds: tuple[int, ...]


def _dice(rec: RoundRecord) -> float:
    value = rec.summary["overall"]["dice"]["mean"]
    return math.nan if value is None else float(value)


def by_strategy_round(records: Sequence[RoundRecord],
                      strategies: Sequence[str] = ()) -> dict[tuple[str, int], list[RoundRecord]]:
    """The records grouped by (strategy, round): strategies in the order given, then in record order; then
    rounds; each group's records by seed. The one grouping of the page's table and of the scripts that read
    the loop's records."""
    order = {s: k for k, s in enumerate(dict.fromkeys([*strategies, *(r.strategy for r in records)]))}
    groups: dict[tuple[str, int], list[RoundRecord]] = {}
    for rec in sorted(records, key=lambda r: (order[r.strategy], r.round, r.seed)):
        groups.setdefault((rec.strategy, rec.round), []).append(rec)
    return groups


def _paired(groups: dict[tuple[str, int], list[RoundRecord]], strategy: str, round_: int) -> dict[int, float]:
    """By seed: the strategy's Dice minus the same seed's random Dice at ``round_`` (seeds both have)."""
    random = {r.seed: r for r in groups.get(("random", round_), [])}
    return {r.seed: _dice(r) - _dice(random[r.seed]) for r in groups.get((strategy, round_), []) if r.seed in random}


def curve_points(records: Sequence[RoundRecord], model: CostModel) -> list[CurvePoint]:
    """Aggregate the records by strategy and round (strategies in record order; random's Δ is ``None``)."""
    groups = by_strategy_round(records)
    points = []
    for (strategy, round_), recs in groups.items():
        minutes = [counts_cost(AnnotationCounts(**r.counts), model).seconds / 60 for r in recs]
        paired = list(_paired(groups, strategy, round_).values())
        delta = aggregate(paired) if strategy != "random" and paired else None
        points.append(CurvePoint(strategy, round_, float(np.mean([r.counts["annotated"] for r in recs])),
                                 aggregate(minutes), aggregate([_dice(r) for r in recs]), delta,
                                 tuple(r.seed for r in recs)))
    return points


def delta_text(delta: SeedStats) -> str:
    """``+0.004 ± 0.015 (95 % CI -0.033 to +0.041)``: a paired difference, its spread and what it can resolve."""
    text = f"{delta.mean:+.3f}" + ("" if delta.std is None else f" ± {delta.std:.3f}")
    interval = delta.interval()
    return text if interval is None else f"{text} (95 % CI {interval[0]:+.3f} to {interval[1]:+.3f})"


def table_lines(points: Sequence[CurvePoint]) -> list[str]:
    head = ["strategy", "round", "annotated slices", "annotator-minutes", "seeds", "dice mean",
            "Δ dice vs random (paired by seed)"]
    rows = [[p.strategy, str(p.round), f"{p.slices:.0f}", f"{p.minutes.mean:,.0f}", str(len(p.seeds)), str(p.dice),
             "—" if p.delta is None else "— (round 0 is one run, shared)" if p.round == 0 else delta_text(p.delta)]
            for p in points]
    return markdown_table(head, rows)


def pooled_delta(records: Sequence[RoundRecord], strategy: str) -> tuple[list[int], SeedStats] | None:
    """``strategy`` − random over every round after 0 that all seeds have: each seed's paired Δ averaged over
    those rounds, then mean ± std over seeds. The rounds of one seed build on each other, so the seeds, not
    the rounds, are the independent samples. ``None`` before any such round."""
    groups = by_strategy_round(records)
    seeds = [r.seed for r in groups.get((strategy, 1), [])]
    paired = {r: _paired(groups, strategy, r) for (s, r) in groups if s == strategy and r > 0}
    rounds = [r for r, by_seed in paired.items() if all(seed in by_seed for seed in seeds)]
    if not seeds or not rounds:
        return None
    return rounds, aggregate([float(np.mean([paired[r][seed] for r in rounds])) for seed in seeds])


def pooled_lines(records: Sequence[RoundRecord]) -> list[str]:
    """One line per strategy: its pooled paired difference to random (:func:`pooled_delta`)."""
    lines = []
    for strategy in dict.fromkeys(r.strategy for r in records):
        pooled = None if strategy == "random" else pooled_delta(records, strategy)
        if pooled is not None:
            rounds, delta = pooled
            over = f"rounds {', '.join(map(str, rounds))}" if len(rounds) > 1 else f"round {rounds[0]}"
            lines.append(f"- {strategy} − random over {over} (each seed's paired "
                         f"Δ averaged over those rounds; {delta.n} seeds): {delta_text(delta)}")
    return lines


def split_by_seeds(points: Sequence[CurvePoint]) -> tuple[list[CurvePoint], list[CurvePoint]]:
    """A strategy's points in two: the rounds with its most seeds (the curve), and those with fewer so far."""
    most = max(len(p.seeds) for p in points)
    return [p for p in points if len(p.seeds) == most], [p for p in points if len(p.seeds) < most]


def plot_curves(points: Sequence[CurvePoint], path: Path, title: str) -> Path:
    """Dice against cumulative annotator-minutes, one line per strategy, the band ± std over seeds.

    The line and band join the rounds every seed has; a round with fewer seeds so far (a loop part way) is
    a hollow marker off the line, so that one seed's number is not drawn as the curve's next point.
    """
    from frugalseg.bench.figures import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    any_partial = False
    for k, strategy in enumerate(dict.fromkeys(p.strategy for p in points)):
        pts = sorted((p for p in points if p.strategy == strategy), key=lambda p: p.round)
        full, partial = split_by_seeds(pts)
        seeds = len(full[0].seeds)
        x = np.array([p.minutes.mean for p in full])
        y = np.array([p.dice.mean for p in full])
        sd = np.array([p.dice.std or 0.0 for p in full])
        colour = plt.get_cmap("tab10")(k % 10)
        ax.plot(x, y, "o-", color=colour, label=f"{strategy} ({seeds} seeds)")
        ax.fill_between(x, y - sd, y + sd, color=colour, alpha=0.15)
        if partial:
            ax.plot([p.minutes.mean for p in partial], [p.dice.mean for p in partial], "o", color=colour,
                    markerfacecolor="none")
            any_partial = True
    if any_partial:
        ax.plot([], [], "o", color="grey", markerfacecolor="none", label="hollow: a round with fewer seeds so far")
    ax.set(xlabel="cumulative annotation cost (annotator-minutes, default cost model)",
           ylabel="mean Dice, validation volumes (band: ± std over seeds)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def page_block(records: Sequence[RoundRecord], opts: LoopOptions, model: CostModel, header: Sequence[str]) -> str:
    """The block's Markdown (the figure written beside it under ``figures/``); a note when nothing is recorded."""
    spec = opts.spec
    if not records:
        return "No round is recorded yet: the loop has not been run (see \"How to run it\")."
    points = curve_points(records, model)
    title = f"{spec.config} from {spec.start}, +{spec.per_round} masked slices per round"
    plot_curves(points, Path(opts.out) / "figures" / FIGURE, title)
    pooled = pooled_lines(records)
    lines = [*header, "", f"![Dice against annotator-minutes](figures/{FIGURE})", "", *table_lines(points), "",
             *([*pooled, ""] if pooled else [])]
    return "\n".join(lines)
