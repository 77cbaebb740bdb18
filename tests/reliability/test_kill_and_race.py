"""The two tests a careless user runs without meaning to: killing a run (SIGKILL, power loss) and starting
two runs into one folder. Both through the real command line in child processes, on the bundled sample."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from frugalseg.training.checkpoint import load_checkpoint
from tests.helpers import sample_root

FAST = ["train.batch_size=2", "data.patch_size=[32,32]", "model.features=[4,8,16,32,64]", "train.precision=off",
        "train.log_every=1", "train.threads=1", "data.augment=false"]


@pytest.fixture(scope="module")
def data_without_validation(tmp_path_factory):
    """The sample without its validation list: the runs train and checkpoint, and spend no time validating."""
    root = tmp_path_factory.mktemp("kill") / "data"
    shutil.copytree(sample_root(), root)
    (root / "val.list").unlink()
    return root


def _train(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "frugalseg", "train", "sample_pce", f"data.root={data}", *FAST, *extra,
            "--out", str(out), "--no-progress"]


def _last_logged(run: Path) -> int:
    try:
        rows = (run / "train_log.csv").read_text().strip().splitlines()
    except FileNotFoundError:
        return 0
    return int(float(rows[-1].split(",")[0])) if len(rows) > 1 else 0


def _kill_at(cmd: list[str], run: Path, step: int, timeout: float = 120.0) -> None:
    """Start ``cmd`` and SIGKILL it once its log reaches ``step`` (it checkpoints every step)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while _last_logged(run) < step:
            assert proc.poll() is None, f"finished before step {step}: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"step {step} not reached in {timeout:.0f} s"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkill_at_random_steps_then_resume_gives_bit_identical_weights(tmp_path, data_without_validation):
    iterations = 24
    args = [f"train.iterations={iterations}", "train.checkpoint_every=1"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train(data_without_validation, full, *args), check=True, capture_output=True)
    steps = sorted(random.Random(22).sample(range(2, iterations - 1), 3))
    for n, step in enumerate(steps):
        _kill_at(_train(data_without_validation, killed, *args, *(["--resume"] if n else [])), killed, step)
        assert load_checkpoint(killed / "checkpoints" / "last.pt")["iteration"] >= step - 1
    done = subprocess.run(_train(data_without_validation, killed, *args, "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (full, killed))
    assert a["iteration"] == b["iteration"] == iterations
    assert a["method"].keys() == b["method"].keys()
    for key in a["method"]:
        assert torch.equal(a["method"][key], b["method"][key]), key
    iters = [int(r["iteration"]) for r in csv.DictReader((killed / "train_log.csv").open())]
    assert iters == list(range(1, iterations + 1))  # no row lost, none repeated by the resumes


def test_two_runs_into_one_folder_one_is_refused_and_the_other_is_whole(tmp_path, data_without_validation):
    run = tmp_path / "run"
    seeds = {0: "train.seed=0", 1: "train.seed=1"}
    procs = {s: subprocess.Popen(_train(data_without_validation, run, "train.iterations=60",
                                        "train.checkpoint_every=20", arg, f"data.simulate.seed={s}"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s, arg in seeds.items()}
    results = {s: (p.wait(timeout=300), p.stderr.read()) for s, p in procs.items()}
    codes = sorted(rc for rc, _ in results.values())
    assert codes == [0, 2], results
    winner = next(s for s, (rc, _) in results.items() if rc == 0)
    loser = 1 - winner
    assert f"in use by pid {procs[winner].pid}" in results[loser][1], results[loser][1]
    # the winner's folder is its own, whole: config, checkpoint, annotations and log agree
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == winner
    assert load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train"]["seed"] == winner
    assert json.loads((run / "annotations.json").read_text())["provenance"]["seed"] == winner
    iters = [int(r["iteration"]) for r in csv.DictReader((run / "train_log.csv").open())]
    assert iters == list(range(1, 61))
    assert not list(tmp_path.glob(".run.replaced-*"))
    assert os.listdir(run)  # and nothing of the loser's: it wrote nothing
