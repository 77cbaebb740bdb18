from __future__ import annotations

import pickle

import pytest
import torch

from frugalseg.errors import CheckpointError
from frugalseg.training.checkpoint import TrainingState, load_checkpoint, load_training_state, save_checkpoint
from frugalseg.training.ema import make_teacher, update_ema


class Evil:
    def __reduce__(self):
        return (print, ("pickle payload executed",))


def test_round_trip_and_atomic(tmp_path):
    path = save_checkpoint({"w": torch.arange(3.0), "iteration": 5, "nested": {"a": [1, 2]}}, tmp_path / "c.pt")
    back = load_checkpoint(path)
    assert back["iteration"] == 5 and torch.equal(back["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


def _state() -> TrainingState:
    return TrainingState(config={"method": {"name": "pce"}}, num_classes=4, method={"w": torch.arange(3.0)},
                         iteration=7, in_channels=2, class_names={"1": "RV"}, optimizer={"state": {}},
                         rng=[torch.get_rng_state()], best_dice=0.5, best_iteration=5)


def test_training_state_round_trips_through_the_file_format(tmp_path):
    state = _state()
    save_checkpoint(state, tmp_path / "s.pt")
    raw = load_checkpoint(tmp_path / "s.pt")
    assert raw["rng"]["torch"][0].dtype == torch.uint8 and raw["iteration"] == 7  # the format's keys, as always
    back = load_training_state(tmp_path / "s.pt")
    assert (back.iteration, back.in_channels, back.num_classes, back.best_iteration) == (7, 2, 4, 5)
    assert torch.equal(back.method["w"], state.method["w"]) and torch.equal(back.rng[0], state.rng[0])
    assert back.class_names == {"1": "RV"} and back.optimizer == {"state": {}}


def test_a_checkpoint_before_in_channels_reads_as_one_channel(tmp_path):
    payload = _state().to_payload()
    del payload["in_channels"]
    save_checkpoint(payload, tmp_path / "old.pt")
    assert load_training_state(tmp_path / "old.pt").in_channels == 1


def test_a_checkpoint_without_weights_is_refused_naming_it(tmp_path):
    save_checkpoint({"config": {}, "num_classes": 4}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="bare.pt: checkpoint lacks method"):
        load_training_state(tmp_path / "bare.pt")


def test_pickle_payload_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "frugalseg.checkpoint/1", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert "executed" not in capsys.readouterr().out
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(plain)


def test_foreign_or_missing(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a frugalseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_ema_update_by_hand():
    student = torch.nn.BatchNorm1d(2)
    teacher = make_teacher(student)
    with torch.no_grad():
        student.weight.fill_(3.0)
        student.running_mean.fill_(2.0)
        student.num_batches_tracked.fill_(7)
    update_ema(teacher, student, decay=0.75)
    assert torch.allclose(teacher.weight, torch.full((2,), 0.75 * 1.0 + 0.25 * 3.0))
    assert torch.allclose(teacher.running_mean, torch.full((2,), 0.25 * 2.0))
    assert int(teacher.num_batches_tracked) == 7
    assert not teacher.weight.requires_grad


def test_teacher_forward_leaves_its_running_statistics_to_the_ema():
    """A teacher in training mode normalises by the batch but only update_ema moves its running stats."""
    student = torch.nn.BatchNorm1d(2)
    teacher = make_teacher(student).train()
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = teacher(x)
    assert torch.allclose(out, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), atol=1e-3)  # batch statistics
    assert torch.equal(teacher.running_mean, torch.zeros(2)) and torch.equal(teacher.running_var, torch.ones(2))
    student(x)  # the student's own forward does update its statistics (momentum 0.1)
    assert torch.allclose(student.running_mean, torch.tensor([0.2, 2.0]))
    update_ema(teacher, student, decay=0.5)
    assert torch.allclose(teacher.running_mean, torch.tensor([0.1, 1.0]))
