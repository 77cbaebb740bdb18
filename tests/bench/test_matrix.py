from __future__ import annotations

import pytest
import torch
import yaml

from frugalseg.bench.matrix import Row, load_matrix, parse_row, row_config
from frugalseg.config import configs_dir
from frugalseg.errors import ConfigError

ROOT = "/data/acdc"  # never read: configs resolve without touching the data


def test_parse_row_splits_label_config_and_overrides():
    row = parse_row("sup3=acdc_supervised,data.simulate.kind=budget,data.simulate.budget=masks3")
    assert row == Row(label="sup3", config="acdc_supervised",
                      overrides=("data.simulate.kind=budget", "data.simulate.budget=masks3"))
    assert row.spec == "acdc_supervised,data.simulate.kind=budget,data.simulate.budget=masks3"
    assert parse_row("acdc_pce", label="pce") == Row(label="pce", config="acdc_pce")


@pytest.mark.parametrize("text", ["=acdc_pce", "pce=", "nolabel", "a/b=acdc_pce", "../x=acdc_pce"])
def test_parse_row_rejects_bad_rows(text):
    with pytest.raises(ConfigError, match="row"):
        parse_row(text)


def test_row_config_applies_overrides_in_the_benchs_order():
    row = parse_row("x=acdc_supervised,train.seed=7,data.simulate.kind=budget,data.simulate.budget=masks3")
    cfg = row_config(row, ROOT, "quick", seed=1, extra=["train.iterations=20"])
    assert cfg.data.root == ROOT and cfg.schedule == "quick"
    assert cfg.train.seed == 7  # the row's own override comes after the seed, as the bench passes them
    assert cfg.train.iterations == 20 and cfg.data.patch_size == (128, 128)
    assert cfg.data.simulate is not None and cfg.data.simulate.budget == "masks3"


def test_matrix_loads_and_lists_every_row_once_in_table_order():
    matrix = load_matrix()
    labels = [r.label for r in matrix.ordered_rows()]
    assert len(labels) == len(set(labels)) == len(matrix.rows)
    assert labels[0] == "supervised"
    assert [b.name for b in matrix.budgets] == ["all_masks", "points", "masks3", "masks7", "masks7_boxes",
                                                "masks3_boxes_tags", "sparse_masks", "sparse_boxes"]
    # the masks-only baselines are shared, not trained again
    assert [b.name for b in matrix.budgets_of("supervised7")] == ["masks7", "masks7_boxes"]
    assert [b.name for b in matrix.budgets_of("mean_teacher3")] == ["masks3", "masks3_boxes_tags"]
    assert [r.label for r in matrix.ordered_rows(["mlds", "pce"])] == ["pce", "mlds"]
    with pytest.raises(ConfigError, match="nope"):
        matrix.ordered_rows(["nope"])


@pytest.mark.parametrize("schedule", ["quick", "paper"])
def test_every_row_config_loads_and_no_two_rows_are_the_same_run(schedule):
    matrix = load_matrix()
    seen: dict[str, str] = {}
    for row in matrix.ordered_rows():
        cfg = row_config(row, ROOT, schedule, seed=0).to_dict()
        cfg.pop("name")
        key = yaml.safe_dump(cfg, sort_keys=True)
        assert key not in seen, f"rows {seen.get(key)} and {row.label} train the same run"
        seen[key] = row.label


def test_budget_rows_simulate_their_budget():
    matrix = load_matrix()
    budgets = {p.stem for p in (configs_dir() / "budgets").glob("*.yaml")}
    for budget in matrix.budgets:
        assert budget.budget in budgets
        for label in budget.methods:
            sim = row_config(matrix.row(label), ROOT, "quick", 0).data.simulate
            assert sim is not None
            if budget.budget == "points":  # the point rows simulate points directly (the same clicks)
                assert sim.kind == "points"
            else:
                assert (sim.kind, sim.budget) == ("budget", budget.budget), label


@pytest.mark.parametrize("text, problem", [
    ("budgets: []\nestimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, "
     "eval_minutes: 0}\nrows: {a: acdc_pce}", "in no budget"),
    ("rows: {a: acdc_pce, b: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a, b]}]\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "same run"),
    ("rows: {a: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a, c]}]\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "unknown rows"),
    ("rows: {a: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a]}]\nnotes: {b: seen}\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "notes name unknown rows"),
    ("rows: {a: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a]}]\nnotes: {a: ' '}\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "empty"),
    ("rows: {a: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a], include: results/../../x.md}]\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "outside the page's folder"),
    ("rows: {a: acdc_pce}\nbudgets: [{name: x, budget: points, title: t, methods: [a], include: /etc/x.md}]\n"
     "estimates: {reference: {iterations: 1, patch_size: [16, 16], batch_size: 1}, minutes: {}, eval_minutes: 0}",
     "include"),
    ("rows: [", "cannot read"),
])
def test_bad_matrix_file_names_itself(tmp_path, text, problem):
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as err:
        load_matrix(path)
    assert str(path) in str(err.value)


def test_the_medsam_rows_carry_the_training_data_caveat():
    """Issue #25: LiteMedSAM may have seen ACDC, so both rows say so on the page (docs/methods/medsam_boxes.md)."""
    notes = load_matrix().notes
    assert sorted(notes) == ["medsam_boxes", "mlds_medsam"]
    for text in notes.values():
        assert "optimistic" in text and "ACDC" in text and "methods/medsam_boxes.md#did-litemedsam-see-acdc" in text


def test_estimate_scales_with_iterations_and_is_none_for_other_shapes():
    matrix = load_matrix()
    quick = row_config(matrix.row("dii_dcr"), ROOT, "quick", 0)
    full = matrix.estimates.minutes["dii_dcr"]
    reference = row_config(matrix.row("dii_dcr"), ROOT, "quick", 0, ["train.iterations=3000"])
    assert matrix.estimates.minutes_for(reference) == full  # the reference shape: the table's minutes as they are
    short = row_config(matrix.row("dii_dcr"), ROOT, "quick", 0, ["train.iterations=1500"])
    assert matrix.estimates.minutes_for(short) == full / 2
    assert matrix.estimates.minutes_for(quick) == pytest.approx(full * quick.train.iterations / 3000)
    assert matrix.estimates.minutes_for(row_config(matrix.row("dii_dcr"), ROOT, "paper", 0)) is None
    # 128x128 crops of the 256 grid: a step costs what the reference's 128x128 step costs
    crops = row_config(matrix.row("dii_dcr"), ROOT, "quick", 0,
                       ["train.iterations=3000", "data.patch_size=[256,256]", "data.crop_size=[128,128]"])
    assert matrix.estimates.minutes_for(crops) == full


def test_a_variant_of_a_method_gets_its_own_estimate():
    matrix = load_matrix()
    naive = row_config(matrix.row("naive_hybrid7"), ROOT, "quick", 0, ["train.iterations=3000"])
    assert matrix.estimates.minutes_for(naive) == matrix.estimates.minutes["dii_dcr dii=false dcr=false"] == 10
    only_dii = row_config(matrix.row("dii_dcr"), ROOT, "quick", 0, ["train.iterations=3000",
                                                                   "method.options.dcr=false"])
    assert matrix.estimates.minutes_for(only_dii) == matrix.estimates.minutes["dii_dcr"]  # not every option matches


def test_side_by_side_jobs_speed_up_training_up_to_the_cores():
    estimates = load_matrix().estimates
    # measured by benchmarks/side_by_side.py: 2 x 25.5 images/s side by side against 42.6 alone
    assert (estimates.cores, estimates.parallel_efficiency) == (2, 0.60)
    assert [estimates.speedup(jobs) for jobs in (1, 2, 3, 8)] == pytest.approx([1.0, 1.2, 1.2, 1.2])
    unmeasured = estimates.model_copy(update={"cores": 1, "parallel_efficiency": 1.0})
    assert unmeasured.speedup(2) == 1.0  # a matrix without the measurement promises nothing from --jobs


def _shared_pairs():
    """(method, budget of the row, budget of the table) for each row a budget reuses from another budget."""
    matrix = load_matrix()
    pairs = set()
    for budget in matrix.budgets:
        for label in budget.rows:
            sim = row_config(matrix.row(label), ROOT, "quick", 0).data.simulate
            if sim is not None and sim.kind == "budget" and sim.budget != budget.budget:
                pairs.add((row_config(matrix.row(label), ROOT, "quick", 0).method.name, sim.budget, budget.budget))
    return sorted(pairs)


def test_shared_rows_are_known():
    assert _shared_pairs() == [("mean_teacher", "masks3", "masks3_boxes_tags"),
                               ("supervised", "masks3", "masks3_boxes_tags"),
                               ("supervised", "masks7", "masks7_boxes")]


@pytest.mark.parametrize("method, own, table, same", [
    *((m, o, t, True) for m, o, t in _shared_pairs()),
    ("mlds", "masks3", "masks3_boxes_tags", False),  # control: a method that reads boxes and tags learns otherwise
])
def test_shared_row_trains_the_same_on_the_tables_budget(tmp_path, method, own, table, same):
    """A row reused by another budget must learn exactly the same there: same weights after training.

    On the sample (4 training patients) the budgets' first 3 or 7 masked patients are cut to 2, so that both
    budgets leave patients unmasked (unlabelled in one, boxes or tags in the other).
    """
    from frugalseg.train import train_run
    from frugalseg.training.checkpoint import load_checkpoint
    from tests.helpers import tiny_config

    states = []
    for name in (own, table):
        budget = yaml.safe_load((configs_dir() / "budgets" / f"{name}.yaml").read_text())
        budget["masks"]["first_patients"] = 2
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(budget))
        cfg = tiny_config(method, data={"simulate": {"kind": "budget", "budget": str(path), "seed": 0}},
                          train={"iterations": 3, "checkpoint_every": 3},
                          model={"deep_supervision": method == "mlds"})
        train_run(cfg, tmp_path / f"run_{name}", progress=False)
        states.append(load_checkpoint(tmp_path / f"run_{name}" / "checkpoints" / "last.pt")["method"])
    annotated = [yaml.safe_load((tmp_path / f"run_{n}" / "annotations.json").read_text()) for n in (own, table)]
    assert annotated[0]["items"] != annotated[1]["items"]  # the budgets really differ on the sample
    assert states[0].keys() == states[1].keys()
    equal = [torch.equal(states[0][key], states[1][key]) for key in states[0]]
    assert all(equal) if same else not all(equal)
