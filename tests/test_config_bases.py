"""Configs composed from bases (``_base_``): the merge, its errors, and the shipped layout it serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from frugalseg.cli import main
from frugalseg.config import configs_dir, load_config, merge_trees, read_config_tree, shipped_configs
from frugalseg.errors import ConfigError
from frugalseg.methods import METHODS
from frugalseg.training.checkpoint import load_checkpoint
from tests.helpers import shipped_schedule

TWO_STREAM = ("mean_teacher", "mlds", "dii_dcr", "action")


def _write(path: Path, tree: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree))
    return path


def test_merge_is_key_by_key_for_mappings_and_replaces_anything_else():
    base = {"train": {"iterations": 10, "batch_size": 4}, "data": {"patch_size": [64, 64]}, "name": "a"}
    top = {"train": {"iterations": 20}, "data": {"patch_size": [32, 32]}}
    assert merge_trees(base, top) == {"train": {"iterations": 20, "batch_size": 4}, "data": {"patch_size": [32, 32]},
                                      "name": "a"}
    assert base["train"]["iterations"] == 10  # the inputs are left alone


def test_bases_merge_in_order_and_the_file_wins(tmp_path):
    _write(tmp_path / "bases" / "a.yaml", {"train": {"iterations": 1, "batch_size": 2}, "method": {"name": "pce"}})
    _write(tmp_path / "bases" / "b.yaml", {"train": {"iterations": 3}, "schedules": {"quick": {"train.seed": 5}}})
    top = _write(tmp_path / "run.yaml", {"_base_": ["bases/a.yaml", "bases/b.yaml"], "train": {"batch_size": 6},
                                          "schedules": {"quick": {"train.iterations": 7}}})
    tree = read_config_tree(top)
    assert tree["train"] == {"iterations": 3, "batch_size": 6}
    assert tree["schedules"]["quick"] == {"train.seed": 5, "train.iterations": 7}
    assert "_base_" not in tree
    cfg = load_config(top, ["schedule=quick"])
    assert (cfg.train.iterations, cfg.train.batch_size, cfg.train.seed) == (7, 6, 5)


def test_a_file_of_ones_own_can_build_on_a_shipped_method(tmp_path):
    mine = _write(tmp_path / "mine.yaml", {"_base_": "methods/pscv.yaml", "method": {"options": {"cv_weight": 1.0}}})
    cfg = load_config(mine)
    assert cfg.method.name == "pscv" and cfg.method.options["cv_weight"] == 1.0
    assert cfg.method.options["temperature"] == load_config("pscv").method.options["temperature"]


@pytest.mark.parametrize(
    ("tree", "needle"),
    [
        ({"_base_": "missing.yaml"}, "'missing.yaml' is neither next to it nor a shipped config"),
        ({"_base_": {"a": 1}}, "_base_ must be a file name or a list of file names"),
        ({"_base_": "self.yaml"}, "_base_ files include each other"),
    ],
)
def test_bad_bases_name_the_file(tmp_path, tree, needle):
    path = _write(tmp_path / "self.yaml", tree)
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_every_method_has_a_file_that_names_it_and_offers_both_schedules():
    for name in METHODS:
        assert name in shipped_configs()
        cfg = load_config(name)
        assert cfg.method.name == name and set(cfg.schedules) == {"paper", "quick"}


def test_the_quick_block_is_written_once():
    """No shipped file but the schedule base copies a key of the CPU schedule's block, and the bench's
    configs (``acdc_*`` and the method files) change none: every row trains on the one schedule. Only the
    demo's sample configs shorten it (a change, not a copy: their values differ)."""
    quick = shipped_schedule("quick")
    for path in configs_dir().rglob("*.yaml"):
        if path.parent.name == "budgets" or path == configs_dir() / "_base_" / "schedules.yaml":
            continue
        own = (yaml.safe_load(path.read_text()).get("schedules") or {}).get("quick") or {}
        copies = sorted(k for k in set(quick) & set(own) if own[k] == quick[k])
        assert not copies, f"{path.name} repeats {copies} of the quick schedule"
        if not path.name.startswith("sample_"):
            assert not set(quick) & set(own), f"{path.name} changes {sorted(set(quick) & set(own))} of the schedule"


def test_the_demo_trains_on_the_cpu_schedule_shortened():
    """The demo's configs take the bench's optimiser and learning-rate schedule, over fewer iterations."""
    quick = shipped_schedule("quick")
    for name in ("sample_supervised", "sample_pce"):
        cfg = load_config(name)
        assert cfg.schedule == "quick" and cfg.optim.name.value == quick["optim.name"]
        assert cfg.optim.lr == quick["optim.lr"] and cfg.optim.lr_schedule.value == quick["optim.lr_schedule"]
        assert cfg.optim.warmup_iterations == quick["optim.warmup_iterations"]
        assert cfg.train.iterations < quick["train.iterations"] and cfg.data.intensity_jitter == 0.5
    assert load_config("sample_pce").method.name == "pce" and load_config("sample_pce").data.simulate is not None


@pytest.mark.parametrize("schedule", ["paper", "quick"])
def test_two_stream_runs_mask_half_of_every_batch(schedule):
    """two_stream.yaml's slots follow the schedules' batch sizes (ACTION's paper batch is its own 8)."""
    for method in TWO_STREAM:
        cfg = load_config(f"acdc_{method}", [f"schedule={schedule}"])
        assert cfg.data.mask_items_per_batch == cfg.train.batch_size // 2, method


@pytest.fixture()
def png_folder(tmp_path: Path) -> Path:
    """Six 32x32 greyscale images with two-class masks: a user's own data, nothing ACDC about it."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pngs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(6):
        mask = np.zeros((32, 32), np.uint8)
        mask[4 + k : 20 + k, 6:22] = 1
        mask[10:14, 10 + k : 16 + k] = 2
        image = (40 + 80 * mask + rng.integers(0, 30, mask.shape)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"case{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"case{k}.png")
    return root


@pytest.mark.slow
def test_a_method_file_trains_on_any_png_folder(png_folder, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "pce", f"data.root={png_folder}", "data.simulate.kind=points", "train.iterations=2",
               "train.batch_size=2", "data.patch_size=[32,32]", "model.features=[4,8,16,32,64]",
               "train.precision=off", "--out", str(out), "--no-progress"])
    assert rc == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["iteration"] == 2 and ckpt["num_classes"] == 3 and ckpt["config"]["method"]["name"] == "pce"
    assert (out / "annotations.json").is_file()
