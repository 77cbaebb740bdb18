from __future__ import annotations

import csv

import pytest

from frugalseg.engine.logs import RunLogger
from frugalseg.training import Stage, StepContext
from frugalseg.training.schedules import poly_lr_factor, split_iterations
from frugalseg.training.stages import StagePlan


def test_one_stage_is_the_plain_schedule():
    plan = StagePlan([Stage("train", 100)], 100)
    for it in (0, 1, 50, 99, 100):
        assert plan.lr_factor(it, 0.9, 5) == poly_lr_factor(it, 100, 0.9, 5)
    ctx = plan.context(7)
    assert (ctx.stage, ctx.stage_start, ctx.stage_iteration, ctx.stage_length) == ("train", 0, 7, 100)
    assert plan.batch_shape(0, 24, None) == (24, None) and plan.batch_shape(0, 8, 4) == (8, 4)


def test_stages_place_iterations_and_restart_the_learning_rate():
    plan = StagePlan([Stage("a", 3), Stage("skip", 0), Stage("b", 5, batch_size=6), Stage("c", 2)], 10)
    assert [s.name for s in plan.stages] == ["a", "b", "c"]  # a stage of 0 iterations is dropped
    assert [plan.index_at(i) for i in range(11)] == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    assert (plan.start(1), plan.end(1)) == (3, 8)
    ctx = plan.context(4)
    assert (ctx.stage, ctx.stage_iteration, ctx.stage_length, ctx.max_iterations) == ("b", 1, 5, 10)
    assert plan.lr_factor(3) == 1.0 and plan.lr_factor(8) == 1.0  # each stage starts at the base rate
    assert plan.lr_factor(5) == pytest.approx(poly_lr_factor(2, 5))
    assert plan.batch_shape(1, 8, 4) == (6, None)  # a stage's own batch: mask slots default to half of it
    assert plan.batch_shape(2, 8, 4) == (8, 4)


@pytest.mark.parametrize(
    ("stages", "total", "message"),
    [
        ([Stage("a", 3), Stage("b", 3)], 7, "add up"),
        ([Stage("a", 3), Stage("a", 4)], 7, "unique"),
        ([Stage("a", -1), Stage("b", 8)], 7, "non-negative"),
        ([Stage("a", 7, batch_size=0)], 7, "positive"),
    ],
)
def test_bad_stages_are_refused(stages, total, message):
    with pytest.raises(ValueError, match=message):
        StagePlan(stages, total)


def test_split_iterations_is_exact():
    assert split_iterations(20, [1, 1, 1]) == [7, 7, 6]
    assert split_iterations(3000, [1, 1, 1]) == [1000] * 3
    assert split_iterations(7, [2, 1, 0]) == [5, 2, 0]
    assert sum(split_iterations(1001, [0.3, 0.3, 0.4])) == 1001
    with pytest.raises(ValueError):
        split_iterations(10, [0, 0])


def test_a_hand_built_context_spans_the_run():
    ctx = StepContext(iteration=4, max_iterations=10)
    assert (ctx.stage, ctx.stage_iteration, ctx.stage_length) == ("", 4, 10)


def test_log_header_widens_for_new_columns(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    log.log("train", 1, {"loss": 1.0, "global": 0.5})
    log.log("train", 2, {"loss": 0.9, "global": 0.4, "ce": 0.3})
    log.log("train", 3, {"loss": 0.8, "ce": 0.2})
    with (tmp_path / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["iteration", "loss", "global", "ce"]
    assert [r["ce"] for r in rows] == ["", "0.3", "0.2"] and rows[2]["global"] == ""
    log.truncate_after(2)
    assert len((tmp_path / "train_log.csv").read_text().strip().splitlines()) == 3
