from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from frugalseg.engine.run_data import load_run_data
from frugalseg.errors import OutputExistsError
from frugalseg.train import train_run
from frugalseg.training.checkpoint import load_checkpoint
from tests.helpers import sample_root, tiny_config


@pytest.fixture(scope="module")
def points_data():
    cfg = tiny_config("pce", data={"simulate": {"kind": "points", "seed": 0}})
    return cfg, load_run_data(cfg)


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["method"]


def test_resume_equals_uninterrupted(tmp_path, points_data):
    cfg, data = points_data
    train_run(cfg, tmp_path / "full", progress=False, run_data=data)
    train_run(cfg, tmp_path / "killed", progress=False, run_data=data, stop_at=3)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["iteration"] == 3
    train_run(cfg, tmp_path / "killed", resume=True, progress=False, run_data=data)
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    rows = (tmp_path / "killed" / "train_log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6  # header + one row per iteration, none duplicated by the resume


def test_validation_writes_best_checkpoint_and_logs(tmp_path, points_data):
    cfg, data = points_data
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"val_every": 3})})
    result = train_run(cfg, tmp_path / "run", progress=False, run_data=data)
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert 0.0 <= result.best_dice <= 1.0
    val = (tmp_path / "run" / "val_log.csv").read_text().splitlines()
    assert val[0].startswith("iteration,dice") and len(val) == 3
    assert (tmp_path / "run" / "tb").is_dir()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["iterations"] == 6


def test_existing_run_folder_is_refused(tmp_path, points_data):
    cfg, data = points_data
    train_run(cfg, tmp_path / "run", progress=False, run_data=data)
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(OutputExistsError, match="--resume"):
        train_run(cfg, tmp_path / "run", progress=False, run_data=data)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
        "-m", "frugalseg", "train", "sample_supervised", f"data.root={sample_root()}", "train.iterations=4",
        "train.batch_size=4", "data.patch_size=[64,64]", "train.val_every=4", "train.checkpoint_every=2",
        "train.log_every=1",
        "model.features=[8,16,32,64,128]", "--out", str(out), "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 4
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert len(ckpt["rng"]["torch"]) == 2
    assert len((out / "train_log.csv").read_text().strip().splitlines()) == 1 + 4  # rank 0 alone logs


def test_crops_train_on_windows_and_evaluate_whole_slices(tmp_path, monkeypatch):
    """data.crop_size: batches are windows of the grid; validation, eval and predict see whole slices on it."""
    from frugalseg.data.dataset import SliceDataset
    from frugalseg.evaluation.checkpoint import evaluate_checkpoint
    from frugalseg.evaluation.inference import predict_volume
    from frugalseg.methods.restore import load_trained_model

    shapes = set()
    original = SliceDataset.__getitem__

    def spy(self, key):
        example = original(self, key)
        shapes.add(tuple(example["image"].shape))
        return example

    monkeypatch.setattr(SliceDataset, "__getitem__", spy)
    cfg = tiny_config("supervised", data={"crop_size": [32, 32]},
                      train={"val_every": 3}, optim={"lr_schedule": "cosine"})
    train_run(cfg, tmp_path / "run", progress=False)
    assert shapes == {(1, 32, 32)}
    rows = list(csv.DictReader((tmp_path / "run" / "train_log.csv").open()))
    assert float(rows[2]["lr"]) == pytest.approx(0.005)  # after 3 of 6 steps the cosine is at half the rate
    assert len((tmp_path / "run" / "val_log.csv").read_text().splitlines()) == 3  # whole-slice validation ran
    model = load_trained_model(tmp_path / "run" / "checkpoints" / "last.pt")
    assert model.config.data.patch_size == (64, 64) and model.config.data.crop_size == (32, 32)
    case = load_run_data(cfg).val_cases[0]
    assert predict_volume(model.network, case.image, patch_size=model.config.data.patch_size).shape == case.image.shape
    out = evaluate_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", sample_root(), tmp_path / "eval")
    assert 0.0 <= out.summary["overall"]["dice"]["mean"] <= 1.0
