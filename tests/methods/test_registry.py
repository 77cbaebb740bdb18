"""Building a method from a config's name: the registry, the input channels, and what importing the loop loads."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from frugalseg.errors import CheckpointError
from frugalseg.methods import METHODS, build_method
from frugalseg.methods.restore import load_trained_model
from frugalseg.training.checkpoint import save_checkpoint
from tests.helpers import tiny_config


@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_method_builds_its_networks_for_the_data_channels(in_channels):
    for name in METHODS:
        model = {"deep_supervision": name == "mlds"}  # MLDS needs its deep-supervision heads
        method = build_method(tiny_config(name, model=model), in_channels, num_classes=4)
        logits = method.inference_network().eval()(torch.zeros(1, in_channels, 64, 64))
        assert logits.shape == (1, 4, 64, 64), name


def test_restore_rebuilds_the_channels_the_checkpoint_names(tmp_path):
    config = tiny_config("supervised")
    method = build_method(config, 2, num_classes=4)
    payload = {"config": config.to_dict(), "in_channels": 2, "num_classes": 4, "method": method.state_dict()}
    save_checkpoint(payload, tmp_path / "two.pt")
    net = load_trained_model(tmp_path / "two.pt").network
    assert net(torch.zeros(1, 2, 64, 64)).shape == (1, 4, 64, 64)


def test_a_checkpoint_without_in_channels_is_one_channel(tmp_path):
    config = tiny_config("supervised")
    method = build_method(config, 1, num_classes=4)
    save_checkpoint({"config": config.to_dict(), "num_classes": 4, "method": method.state_dict()}, tmp_path / "old.pt")
    assert load_trained_model(tmp_path / "old.pt").network(torch.zeros(1, 1, 64, 64)).shape[1] == 4


def _mean_teacher_checkpoint(path):
    """A mean-teacher checkpoint whose student and teacher differ: the student's weights are all 0.25."""
    config = tiny_config("mean_teacher")
    method = build_method(config, 1, num_classes=4)
    with torch.no_grad():
        for p in method.nets["student"].parameters():
            p.fill_(0.25)
    save_checkpoint({"config": config.to_dict(), "num_classes": 4, "method": method.state_dict()}, path)


def test_restore_returns_the_method_choice_or_the_named_network(tmp_path):
    _mean_teacher_checkpoint(tmp_path / "mt.pt")

    def first_weight(network):
        return next(network.parameters()).flatten()[0].item()

    assert first_weight(load_trained_model(tmp_path / "mt.pt").network) != 0.25  # the teacher, by the method's choice
    assert first_weight(load_trained_model(tmp_path / "mt.pt", network="student").network) == 0.25
    assert first_weight(load_trained_model(tmp_path / "mt.pt", network="teacher").network) != 0.25


def test_restore_names_the_networks_a_checkpoint_holds_when_asked_for_another(tmp_path):
    _mean_teacher_checkpoint(tmp_path / "mt.pt")
    with pytest.raises(CheckpointError, match=r"mt\.pt: no network 'peer' in this mean_teacher checkpoint; "
                                              r"it holds student, teacher"):
        load_trained_model(tmp_path / "mt.pt", network="peer")


@pytest.mark.parametrize("module", ["frugalseg.engine.trainer", "frugalseg.engine.run_data", "frugalseg.training"])
def test_importing_the_loop_or_the_core_loads_no_method(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('frugalseg.methods')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
