"""Aggregation over seeds and Markdown tables, from the ``summary.json`` files ``frugalseg eval`` writes.

Each seed contributes one number per metric and class: its mean over the validation volumes (the
papers' per-volume protocol, docs/evaluation.md). A table cell is the mean ± sample standard deviation
(``ddof = 1``) of those per-seed numbers, so the ± measures how much a result moves with the training
seed, not the spread between patients (that is in the per-volume CSVs). One seed gives the bare number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "METRICS",
    "SeedStats",
    "aggregate",
    "class_names",
    "markdown_table",
    "mean_std",
    "metric_cells",
    "metric_columns",
    "metric_value",
    "metrics_table",
]

METRICS: tuple[str, ...] = ("dice", "hd95", "asd")
"""The metrics of every results table (Jaccard and ASSD stay in the CSVs and summaries)."""

Summary = Mapping[str, Any]


@dataclass(frozen=True)
class SeedStats:
    """Mean and sample standard deviation over seeds (``std`` is ``None`` for a single seed)."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        if self.std is None:
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.std:.3f}"

    def interval(self, level: float = 0.95) -> tuple[float, float] | None:
        """Student-t confidence interval of the mean over seeds (``None`` for one seed).

        mean ± t(n − 1) · std / √n: with 3 seeds the half-width is 2.48 standard deviations, which is
        what a difference measured on 3 seeds can and cannot resolve.
        """
        if self.std is None:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.5 + level / 2, self.n - 1)) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def aggregate(values: Sequence[float]) -> SeedStats:
    """Mean ± sample std of per-seed values; ``ValueError`` for none."""
    if not values:
        raise ValueError("no values to aggregate")
    vals = [float(v) for v in values]
    if len(vals) == 1:
        return SeedStats(vals[0], None, 1)
    return SeedStats(statistics.mean(vals), statistics.stdev(vals), len(vals))


def mean_std(values: Sequence[float]) -> str:
    """``0.812 ± 0.010`` (``0.812`` for one value): the cell format of every table."""
    return str(aggregate(values))


def metric_value(summary: Summary, metric: str, cls: str = "mean") -> float:
    """The over-volumes mean of ``metric`` for class ``cls`` (``"mean"``: the class average) of one summary.

    A value stored as ``null`` (a non-finite number, which strict JSON cannot hold) reads as NaN.
    """
    node = summary["overall"] if cls == "mean" else summary["classes"][cls]
    value = node[metric]["mean"]
    return math.nan if value is None else float(value)


def class_names(summaries: Sequence[Summary]) -> list[str]:
    """Foreground class names in the order the first summary gives them."""
    return list(summaries[0]["classes"])


def metric_columns(classes: Sequence[str], metrics: Sequence[str] = METRICS) -> list[str]:
    return [f"{m} {c}" for m in metrics for c in [*classes, "mean"]]


def metric_cells(summaries: Sequence[Summary], classes: Sequence[str], metrics: Sequence[str] = METRICS) -> list[str]:
    """One cell per metric and class (then the class mean), each aggregated over the seeds' summaries."""
    return [mean_std([metric_value(s, m, c) for s in summaries]) for m in metrics for c in [*classes, "mean"]]


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table (``|---|`` separator, the style of every generated table in docs/)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def metrics_table(results: Mapping[str, Sequence[Summary]], metrics: Sequence[str] = METRICS) -> list[str]:
    """``method | seeds | dice RV ... asd mean``: one line per label, cells over that label's seeds."""
    first = next(iter(results.values()))
    classes = class_names(first)
    rows = [[label, str(len(runs)), *metric_cells(runs, classes, metrics)] for label, runs in results.items()]
    return markdown_table(["method", "seeds", *metric_columns(classes, metrics)], rows)
