from __future__ import annotations

from pathlib import Path

import pytest

from frugalseg.config import DATA_ENV, build_config, load_config, parse_override, shipped_configs
from frugalseg.errors import ConfigError
from tests.helpers import shipped_schedule


def test_every_shipped_config_validates_in_both_schedules():
    shipped = shipped_configs()
    assert shipped
    for path in shipped:
        cfg = load_config(path)
        if cfg.schedules:
            assert set(cfg.schedules) == {"paper", "quick"}, path.name
            quick = load_config(path, ["schedule=quick"])
            assert quick.train.iterations <= cfg.train.iterations


def test_quick_schedule_changes_size_iterations_batch():
    paper = load_config("acdc_supervised")
    quick = load_config("acdc_supervised", ["schedule=quick"])
    block = shipped_schedule("quick")
    assert paper.data.patch_size == (256, 256) and paper.train.iterations == 30000 and paper.train.batch_size == 24
    assert quick.data.patch_size == tuple(block["data.patch_size"])
    assert quick.train.iterations == block["train.iterations"] and quick.train.batch_size == block["train.batch_size"]
    for key in ("optim.name", "optim.lr", "optim.lr_schedule", "optim.warmup_iterations"):
        assert getattr(quick.optim, key.split(".")[1]) == block[key], key


def test_dotted_overrides_win_over_schedule():
    cfg = load_config("acdc_supervised", ["schedule=quick", "train.iterations=7", "data.patch_size=[64,64]"])
    assert cfg.train.iterations == 7
    assert cfg.data.patch_size == (64, 64)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.iteratons=5", "train.iteratons: unknown key"),
        ("train.iterations=-1", "train.iterations"),
        ("data.patch_size=[100,100]", "multiples of 16"),
        ("method.options.bogus=1", "method.options.bogus: unknown key"),
        ("method.name=nope", "unknown method 'nope'"),
        ("schedule=slow", "schedule 'slow'"),
        ("train.precision=fp8", "train.precision"),
    ],
)
def test_bad_keys_and_values_name_themselves(override, needle):
    with pytest.raises(ConfigError, match=None) as info:
        load_config("acdc_supervised", [override])
    assert needle in str(info.value)


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=null") == ("a", None)
    with pytest.raises(ConfigError):
        parse_override("novalue")
    with pytest.raises(ConfigError):
        parse_override("a..b=1")


def test_missing_config_lists_shipped_ones():
    with pytest.raises(ConfigError, match="acdc_supervised"):
        load_config("does_not_exist")


def test_data_root_falls_back_to_environment(monkeypatch, tmp_path: Path):
    cfg = build_config({"method": {"name": "supervised"}})
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(ConfigError, match=DATA_ENV):
        cfg.data.resolved_root()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert cfg.data.resolved_root() == tmp_path
