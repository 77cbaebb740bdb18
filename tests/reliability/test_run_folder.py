"""The run folder's promises, one by one: a lock per folder, an overwrite that is a swap rolled back on failure,
a failed run that leaves nothing, a resume that continues the same run (or logs its changes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from frugalseg.cli import main
from frugalseg.engine import trainer as trainer_module
from frugalseg.engine.run_data import load_run_data
from frugalseg.engine.trainer import Trainer
from frugalseg.errors import ConfigError
from frugalseg.run_folder import LOCK_NAME, RunFolder, RunFolderBusy, RunMode
from frugalseg.train import train_run
from frugalseg.training.checkpoint import load_checkpoint
from tests.helpers import sample_root, tiny_config
from tests.reliability.cases import digest


@pytest.fixture(scope="module")
def points():
    cfg = tiny_config("pce", data={"simulate": {"kind": "points", "seed": 0}})
    return cfg, load_run_data(cfg, with_val=False)  # no validation: seconds, not minutes


@pytest.fixture
def finished(tmp_path, points):
    cfg, data = points
    train_run(cfg, tmp_path / "run", progress=False, run_data=data)
    return tmp_path / "run"


def _asides(run):
    return sorted(run.parent.glob(f".{run.name}.replaced-*"))


def test_lock_refuses_a_second_writer_naming_the_pid_and_frees_on_close(tmp_path):
    first = RunFolder(tmp_path / "run")
    first.open({"a": 1})
    with pytest.raises(RunFolderBusy, match=f"in use by pid {os.getpid()}"):
        RunFolder(tmp_path / "run", RunMode.OVERWRITE).check()
    with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
        RunFolder(tmp_path / "run", RunMode.OVERWRITE).open()
    first.close()
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""  # a free lock names no one
    again = RunFolder(tmp_path / "run", RunMode.OVERWRITE)
    again.check()
    again.open({"a": 2})
    again.close()


def test_a_killed_holder_frees_the_lock(tmp_path):
    folder = tmp_path / "run"
    code = (f"from frugalseg.run_folder import RunFolder; f = RunFolder({str(folder)!r}); f.open({{}}); "
            "print('locked', flush=True); import time; time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}"):
            RunFolder(folder, RunMode.OVERWRITE).check()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    RunFolder(folder, RunMode.OVERWRITE).check()  # the OS freed it with the process


def test_overwrite_failing_before_its_first_checkpoint_puts_the_old_run_back(finished, points, monkeypatch):
    cfg, data = points
    before = digest(finished)

    def fail(*args, **kwargs):
        assert _asides(finished), "the old run is moved aside while the new one starts"
        assert (finished / "config.json").is_file()
        raise RuntimeError("the machine fell over")

    monkeypatch.setattr(Trainer, "loop", fail)
    with pytest.raises(RuntimeError):
        train_run(cfg, finished, overwrite=True, progress=False, run_data=data)
    assert digest(finished) == before and not _asides(finished)


def test_overwrite_deletes_the_old_run_once_the_new_one_has_checkpointed(finished, points, monkeypatch):
    cfg, data = points
    old = load_checkpoint(finished / "checkpoints" / "last.pt")["config"]["train"]["seed"]
    save = trainer_module.save_checkpoint
    calls = []

    def save_then_fail(payload, path):
        save(payload, path)
        calls.append(path.name)
        if calls.count("last.pt") == 2:
            raise KeyboardInterrupt  # the user stops the new run after its first checkpoint

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_fail)
    new_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": old + 1})})
    with pytest.raises(KeyboardInterrupt):
        train_run(new_cfg, finished, overwrite=True, progress=False, run_data=data)
    assert not _asides(finished)  # the new run can be resumed: the old one is gone
    assert load_checkpoint(finished / "checkpoints" / "last.pt")["config"]["train"]["seed"] == old + 1


def test_a_fresh_run_that_fails_leaves_nothing(tmp_path, points, monkeypatch):
    cfg, data = points
    monkeypatch.setattr(Trainer, "loop", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        train_run(cfg, tmp_path / "run", progress=False, run_data=data)
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made beforehand stays, empty
    with pytest.raises(RuntimeError):
        train_run(cfg, tmp_path / "empty", progress=False, run_data=data)
    assert list((tmp_path / "empty").iterdir()) == []


def test_resume_with_changes_is_logged(finished, points):
    cfg, data = points
    longer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"iterations": 8})})
    with pytest.raises(ConfigError, match="train.iterations: stored 6, given 8"):
        train_run(longer, finished, resume=True, progress=False, run_data=data)
    train_run(longer, finished, resume_with_changes=True, progress=False, run_data=data)
    log = (finished / "run.log").read_text()
    assert "resumed at iteration 6 with changes" in log and "train.iterations: 6 -> 8" in log
    assert json.loads((finished / "config.json").read_text())["train"]["iterations"] == 8
    assert load_checkpoint(finished / "checkpoints" / "last.pt")["iteration"] == 8


def test_harmless_changes_resume_without_the_flag(tmp_path, points):
    cfg, data = points
    train_run(cfg, tmp_path / "run", progress=False, run_data=data, stop_at=3)
    quieter = cfg.model_copy(update={"train": cfg.train.model_copy(update={"log_every": 2, "threads": 1})})
    train_run(quieter, tmp_path / "run", resume=True, progress=False, run_data=data)
    assert not (tmp_path / "run" / "run.log").exists()


def test_summary_train_seconds_is_the_total_after_a_resume(tmp_path, points):
    cfg, data = points
    train_run(cfg, tmp_path / "run", progress=False, run_data=data, stop_at=3)
    first = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["train_seconds"]
    assert first > 0
    time.sleep(0.01)
    result = train_run(cfg, tmp_path / "run", resume=True, progress=False, run_data=data)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_seconds"] == pytest.approx(result.seconds) and summary["train_seconds"] > first


def test_note_names_an_old_run_left_aside(tmp_path, capsys):
    (tmp_path / ".run.replaced-1-2").mkdir()
    RunFolder(tmp_path / "run").check()
    assert ".run.replaced-1-2" in capsys.readouterr().out


def test_no_validation_set_says_so(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(sample_root(), data)
    (data / "val.list").unlink()
    rc = main(["train", "sample_pce", f"data.root={data}", "train.iterations=2", "train.batch_size=4",
               "data.patch_size=[64,64]", "model.features=[8,16,32,64,128]", "train.precision=off",
               "--out", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "no validation set" in out and "iteration -1" not in out


def test_predict_reads_an_unlabelled_hdf5_scan(finished, tmp_path):
    import h5py
    import nibabel as nib
    import numpy as np

    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f["image"] = np.random.default_rng(0).random((3, 40, 36)).astype(np.float32)
    rc = main(["predict", "--checkpoint", str(finished / "checkpoints" / "last.pt"), "--input",
               str(tmp_path / "scan.h5"), "--out", str(tmp_path / "p")])
    assert rc == 0 and sorted(nib.load(tmp_path / "p" / "scan.nii.gz").shape) == [3, 36, 40]


def test_a_run_that_loses_the_race_for_the_lock_removes_nothing(tmp_path):
    first = RunFolder(tmp_path / "run")
    first.open({"seed": 0})
    (tmp_path / "run" / "annotations.json").write_text("{}")
    before = digest(tmp_path / "run")
    second = RunFolder(tmp_path / "run")  # checked before the first run existed, opening now
    with pytest.raises(RunFolderBusy):
        second.open({"seed": 1})
    second.abort()  # what the trainer does on any failure
    RunFolder(tmp_path / "run", RunMode.OVERWRITE).abort()  # a folder never opened (another DDP rank) is left alone
    assert digest(tmp_path / "run") == before
    first.close()
