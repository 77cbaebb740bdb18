from __future__ import annotations

import math

import pytest

from frugalseg.bench.tables import SeedStats, aggregate, markdown_table, mean_std, metric_value, metrics_table
from tests.bench.fakes import fake_summary


def test_aggregate_is_mean_and_sample_std_over_seeds():
    # by hand: mean (0.80 + 0.82 + 0.78) / 3 = 0.80; deviations 0, 0.02, -0.02; sample variance 0.0008 / 2
    stats = aggregate([0.80, 0.82, 0.78])
    assert stats.mean == pytest.approx(0.80) and stats.std == pytest.approx(0.02) and stats.n == 3
    assert str(stats) == "0.800 ± 0.020"
    assert aggregate([0.5, 0.6]).std == pytest.approx(math.sqrt(0.005))
    assert aggregate([0.81234]) == SeedStats(0.81234, None, 1)
    assert mean_std([0.81234]) == "0.812"
    with pytest.raises(ValueError):
        aggregate([])


def test_metric_value_reads_class_and_mean_and_null_as_nan():
    summary = fake_summary(0.8, hd95=4.0, spread=0.1)
    assert metric_value(summary, "dice") == 0.8
    assert metric_value(summary, "dice", "RV") == pytest.approx(0.7)
    assert metric_value(summary, "hd95", "LV") == pytest.approx(4.1)
    summary["overall"]["hd95"]["mean"] = None
    assert math.isnan(metric_value(summary, "hd95"))


def test_metrics_table_renders_one_line_per_label():
    results = {"pce": [fake_summary(0.8), fake_summary(0.82), fake_summary(0.78)], "pscv": [fake_summary(0.75)]}
    lines = metrics_table(results, metrics=("dice",))
    assert lines == [
        "| method | seeds | dice RV | dice Myo | dice LV | dice mean |",
        "|---|---|---|---|---|---|",
        "| pce | 3 | 0.800 ± 0.020 | 0.800 ± 0.020 | 0.800 ± 0.020 | 0.800 ± 0.020 |",
        "| pscv | 1 | 0.750 | 0.750 | 0.750 | 0.750 |",
    ]


def test_markdown_table():
    assert markdown_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_interval_is_the_student_t_interval_of_the_mean_over_seeds():
    # 1, 2, 3: mean 2, sample std 1; t(0.975, 2) = 4.302653 (tables), half-width 4.302653 / sqrt(3) = 2.484138
    low, high = aggregate([1.0, 2.0, 3.0]).interval()
    assert low == pytest.approx(2 - 2.484138, abs=1e-6) and high == pytest.approx(2 + 2.484138, abs=1e-6)
    # 0, 2: mean 1, std sqrt(2); t(0.95, 1) = 6.313752 (90 %), half-width 6.313752 * sqrt(2) / sqrt(2)
    assert aggregate([0.0, 2.0]).interval(0.90) == pytest.approx((1 - 6.313752, 1 + 6.313752), abs=1e-6)
    assert aggregate([0.5]).interval() is None
