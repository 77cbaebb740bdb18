"""Fitting a cost model from the page's timing log: gaps by kind, slice changes, pauses, the base model kept."""

from __future__ import annotations

import json

import pytest

from frugalseg.annotate.fit_cost import fit_cost_model, log_gaps, main
from frugalseg.bench.cost import load_cost_model


def record(t, action, item=None, session="s1"):
    r = {"t": t, "session": session, "action": action}
    if item is not None:
        r["item"] = item
    return r


LOG = [
    record(0.0, "start"),
    record(5.0, "point", "a"),        # first on slice a (after start): 5 s, overhead 5 - 2 = 3
    record(7.0, "point", "a"),        # 2
    record(10.0, "point", "a"),       # 3
    record(11.0, "point", "a"),       # 1
    record(20.0, "box", "a"),         # 9
    record(21.0, "tag", "a"),         # 1
    record(30.0, "point", "b"),       # first on slice b: 9 s, overhead 7
    record(34.0, "point", "b"),       # 4
    record(500.0, "point", "b"),      # a pause: dropped
    record(501.0, "undo", "b"),       # not costed
    record(503.0, "empty", "c"),      # first on slice c: overhead max(0, 2 - 1) = 1
    record(1.0, "start", session="s2"),
    record(2.5, "point", "a", session="s2"),  # another session: first on its slice, overhead 0 (1.5 < 2.5)
]


def test_gaps_by_kind_slice_change_and_pause():
    gaps = log_gaps(LOG, max_gap=120)
    assert sorted(gaps.within["click"]) == [1.0, 2.0, 3.0, 4.0]
    assert gaps.within["box"] == [9.0] and gaps.within["tag"] == [1.0]
    assert sorted(gaps.first_on_slice) == [("click", 1.5), ("click", 5.0), ("click", 9.0), ("tag", 2.0)]
    assert gaps.paused == 1


def test_fit_replaces_measured_kinds_and_keeps_the_rest():
    base = load_cost_model()
    model, used = fit_cost_model(LOG, base, "log.jsonl")
    assert used == {"click": 4, "slice_overhead": 4}
    # clicks 1, 2, 3, 4: median 2.5, quartiles 1.75 and 3.25 (numpy's linear interpolation)
    assert (model.click.seconds, model.click.low, model.click.high) == (2.5, 1.75, 3.25)
    # overheads: 5 - 2.5, 9 - 2.5, 2 - 1 (tag median), max(0, 1.5 - 2.5) -> 2.5, 6.5, 1, 0
    assert model.slice_overhead.seconds == pytest.approx(1.75)
    assert model.box == base.box and model.mask_structure == base.mask_structure  # one box gap is too few
    assert "4 timed actions in log.jsonl" in model.click.rests_on


def test_command_writes_a_model_bench_accepts(tmp_path, store):
    from frugalseg.data.annotations import Point

    for y in range(5):
        store.add("patient038_frame01_slice_3", "points", Point.model_validate({"class": 1, "y": y, "x": 3}))
    store.close()
    out = tmp_path / "costs.yaml"
    assert main([str(store.log_path), "--out", str(out)]) == 0
    model = load_cost_model(out)  # what frugalseg bench --cost-model reads
    assert "timed actions" in model.click.rests_on and model.click.seconds < 5
    assert main([str(store.log_path), "--out", str(out)]) == 2  # an existing model is not overwritten


def test_broken_log_names_the_line(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(record(0, "start")) + "\n{not json\n")
    assert main([str(log), "--out", str(tmp_path / "m.yaml")]) == 2
    assert "line 2: not a timing record" in capsys.readouterr().err
