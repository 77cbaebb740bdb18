"""``frugalseg bench --jobs``: the scheduler, the child's command and environment, the child itself.

No training here: the child processes are fakes standing in for :class:`subprocess.Popen` (ended after a
number of polls), except two tests that start plain ``sleep`` processes to check that none outlives a
killed parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from frugalseg.bench import parallel
from frugalseg.bench.matrix import parse_row, row_config
from frugalseg.bench.parallel import (
    Job,
    JobFailure,
    Launcher,
    child_command,
    child_main,
    gpu_devices,
    run_jobs,
    threads_per_job,
)
from frugalseg.bench.records import has_record
from frugalseg.bench.runner import check_run, config_differences
from frugalseg.errors import ConfigError
from tests.bench.fakes import FakeChildren

DATA = "/data/acdc"
ROWS = [parse_row(r) for r in ("supervised=acdc_supervised", "pce=acdc_pce", "pscv=acdc_pscv")]


def _jobs(runs: Path, seeds=(0, 1)) -> list[Job]:
    return [Job(row, seed, DATA, runs, "quick", ("train.iterations=2",)) for row in ROWS for seed in seeds]


@pytest.fixture
def children(monkeypatch):
    fake = FakeChildren()
    monkeypatch.setattr(parallel, "spawn", fake)
    return fake


def test_jobs_start_in_matrix_order_with_at_most_n_at_once(tmp_path, children):
    children.polls = {"supervised s0": 5, "supervised s1": 1, "pce s0": 3, "pce s1": 1, "pscv s0": 2, "pscv s1": 1}
    lines: list[str] = []
    failures = run_jobs(_jobs(tmp_path), 2, Launcher(1), lines.append, poll_seconds=0)
    assert failures == []
    assert children.order == ["supervised s0", "supervised s1", "pce s0", "pce s1", "pscv s0", "pscv s1"]
    assert children.max_alive == 2 and not children.alive
    started = [ln for ln in lines if "started" in ln]
    assert started[0] == (f"[supervised s0] started (worker 1 of 2; output in "
                          f"{tmp_path / 'logs' / 'supervised-s0.out'})")
    assert len(started) == 6 and sum("trained in" in ln for ln in lines) == 6
    assert lines[-1].endswith("(6 of 6 runs ended)")
    # supervised s1 ended first, so pce s0 took its worker while supervised s0 went on
    assert lines.index("[pce s0] started (worker 2 of 2; output in "
                       f"{tmp_path / 'logs' / 'pce-s0.out'})") < next(
        i for i, ln in enumerate(lines) if ln.startswith("[supervised s0] trained"))


def test_one_worker_runs_one_job_at_a_time(tmp_path, children):
    run_jobs(_jobs(tmp_path, seeds=(0,)), 1, Launcher(2), lambda _: None, poll_seconds=0)
    assert children.order == ["supervised s0", "pce s0", "pscv s0"] and children.max_alive == 1


def test_a_failed_job_is_reported_and_the_others_finish(tmp_path, children):
    children.polls = {"supervised s0": 4}
    children.codes = {"supervised s1": 1, "pce s0": -signal.SIGKILL}
    lines: list[str] = []
    failures = run_jobs(_jobs(tmp_path), 2, Launcher(1), lines.append, poll_seconds=0)
    assert [(f.job.name, f.returncode) for f in failures] == [("supervised s1", 1), ("pce s0", -signal.SIGKILL)]
    assert len(children.launched) == 6 and all(c.code is not None for c in children.launched)
    assert sum("trained in" in ln for ln in lines) == 4
    failed = next(ln for ln in lines if ln.startswith("[supervised s1] FAILED"))
    assert "exit code 1" in failed and str(tmp_path / "logs" / "supervised-s1.out") in failed
    assert "RuntimeError: boom" in failed and "the others go on" in failed
    assert failures[1].describe() == f"pce s0 (killed by SIGKILL; output in {tmp_path / 'logs' / 'pce-s0.out'})"
    assert isinstance(failures[0], JobFailure) and failures[0].last_line == "RuntimeError: boom"


def test_interrupt_stops_the_running_children_and_starts_no_more(tmp_path, children):
    children.polls = {"supervised s0": 100, "supervised s1": 100}

    def log(line: str) -> None:
        if line.startswith("[supervised s1] started"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(_jobs(tmp_path), 2, Launcher(1), log, poll_seconds=0)
    assert children.order == ["supervised s0", "supervised s1"]
    assert all(c.terminated for c in children.launched) and not children.alive


def test_child_command_and_environment_carry_threads_gpu_and_overrides(tmp_path, children, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    job = Job(ROWS[1], 2, DATA, tmp_path, "quick", ("train.iterations=-1",))
    Launcher(3, devices=["4", "6"])(job, 1)
    child = children.launched[0]
    assert child.command[:3] == [sys.executable, "-m", "frugalseg.bench.parallel"]
    assert child.options["threads"] == "3" and child.options["row"] == "pce=acdc_pce"
    assert child.options["seed"] == "2" and child.options["parent-pid"] == str(os.getpid())
    assert "--set=train.iterations=-1" in child.command
    assert child.env["OMP_NUM_THREADS"] == "3" and child.env["CUDA_VISIBLE_DEVICES"] == "6"
    assert child.env["PYTHONUNBUFFERED"] == "1" and child.new_session
    assert (tmp_path / "logs" / "pce-s2.out").read_text().startswith("=== ")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in Launcher(1).environment(0)  # on CPU the child's GPUs are left alone


def test_threads_share_out_the_cpus():
    assert threads_per_job(1, cpus=2) == 2
    assert threads_per_job(2, cpus=2) == 1
    assert threads_per_job(3, cpus=2) == 1
    assert threads_per_job(2, cpus=16) == 8


class _Cuda:
    def __init__(self, count: int) -> None:
        self.count = count

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count


def test_gpu_jobs_need_one_gpu_each(monkeypatch):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch, "cuda", _Cuda(0))
    assert gpu_devices(2) is None
    monkeypatch.setattr(torch, "cuda", _Cuda(1))
    with pytest.raises(ConfigError, match=r"--jobs 2: this machine has 1 GPU.*--jobs 1 or fewer"):
        gpu_devices(2)
    monkeypatch.setattr(torch, "cuda", _Cuda(3))
    assert gpu_devices(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7,9")
    assert gpu_devices(3) == ["5", "7", "9"]


TRAINED: list = []
"""The configs :func:`recording_train_run` was called with."""


def recording_train_run(config, run_dir, resume=False, overwrite=False, progress=True, **_):
    """Stands in for the training in the child: records the config, leaves a finished run."""
    TRAINED.append(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (run_dir / "summary.json").write_text(json.dumps({"train_seconds": 1.0}))


def _fake_eval(monkeypatch) -> list[str]:
    """``frugalseg eval`` writing fixed files; the devices it was asked for."""
    import frugalseg.evaluation.checkpoint as evaluate
    from tests.bench.fakes import fake_summary

    devices: list[str] = []

    def fake(checkpoint, data, out, overwrite=False, device=None, **_):
        devices.append(device)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(fake_summary(0.5)))
        (out / "per_volume.csv").write_text("case_id,class_index,class,dice\ncase0,1,RV,0.5\n")

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", fake)
    return devices


def test_child_trains_with_its_threads_and_the_run_still_matches_its_row(tmp_path, monkeypatch, capsys):
    import frugalseg.train as train

    TRAINED.clear()
    monkeypatch.setattr(train, "train_run", recording_train_run)
    _fake_eval(monkeypatch)
    args = ["--row=pce=acdc_pce", "--seed=1", f"--data={DATA}", f"--runs={tmp_path}", "--schedule=quick",
            "--threads=1", "--set=train.iterations=4"]
    assert child_main(args) == 0
    config = TRAINED[0]
    assert config.train.threads == 1 and config.train.iterations == 4 and config.train.seed == 1
    # the bench's check compares the run with the row as the parent spells it, without the thread count
    wanted = row_config(ROWS[1], DATA, "quick", 1, ["train.iterations=4"])
    assert wanted.train.threads is None
    stored = json.loads((tmp_path / "pce-s1" / "config.json").read_text())
    assert config_differences(stored, wanted.to_dict()) == []
    check_run(tmp_path / "pce-s1", wanted)
    # a finished run is skipped by the child too; an explicit --set train.threads wins over the jobs' share
    assert child_main(args) == 0 and len(TRAINED) == 1
    assert "[pce s1] finished earlier: skipped" in capsys.readouterr().out
    assert child_main([*args[:1], "--seed=2", *args[2:], "--set=train.threads=3"]) == 0
    assert TRAINED[-1].train.threads == 3


def test_child_scores_and_records_its_run_and_skips_a_recorded_one(tmp_path, monkeypatch, capsys):
    import frugalseg.train as train

    TRAINED.clear()
    monkeypatch.setattr(train, "train_run", recording_train_run)
    devices = _fake_eval(monkeypatch)
    runs, records = tmp_path / "runs", tmp_path / "records"
    job = Job(ROWS[1], 0, DATA, runs, "quick", ("train.iterations=4",), records=records, device="cpu")
    command = child_command(job, threads=1, parent_pid=1)
    assert f"--records={records}" in command and "--device=cpu" in command
    args = [a for a in command[3:] if not a.startswith("--parent-pid")]
    assert child_main(args) == 0
    assert has_record(records / "pce-s0") and devices == ["cpu", "cpu"]
    assert f"[pce s0] recorded in {records / 'pce-s0'}" in capsys.readouterr().out
    shutil.rmtree(runs)  # the record alone makes the run finished
    assert child_main(args) == 0 and len(TRAINED) == 1
    assert "[pce s0] finished earlier: skipped" in capsys.readouterr().out


def test_child_reports_a_config_mismatch_as_an_error(tmp_path, capsys):
    run = tmp_path / "pce-s0"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    (run / "config.json").write_text(json.dumps(row_config(ROWS[1], DATA, "quick", 0,
                                                           ["train.iterations=9"]).to_dict()))
    assert child_main(["--row=pce=acdc_pce", "--seed=0", f"--data={DATA}", f"--runs={tmp_path}",
                       "--schedule=quick", "--threads=1"]) == 2
    assert "[pce s0]: error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- real processes: no orphans (Linux)
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from frugalseg.bench.matrix import parse_row
    from frugalseg.bench.parallel import Job, run_jobs

    pids = Path(sys.argv[1])
    def launch(job, slot):
        child = subprocess.Popen([sys.executable, "-c", sys.argv[2], str(__import__("os").getpid())],
                                 start_new_session=True)
        with pids.open("a") as fh:
            fh.write(f"{child.pid}\\n")
        return child
    jobs = [Job(parse_row("pce=acdc_pce"), s, "/d", Path("/r"), "quick") for s in range(3)]
    run_jobs(jobs, 2, launch, print, poll_seconds=0.05)
""")
SLEEP = "import time; time.sleep(60)"
DIES_WITH_PARENT = ("import sys, time; from frugalseg.bench.parallel import exit_with_parent; "
                    "exit_with_parent(int(sys.argv[1])); time.sleep(60)")


def _start_parent(tmp_path: Path, child_code: str) -> tuple[subprocess.Popen, list[int]]:
    pids = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pids), child_code],
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pids.is_file() and len(pids.read_text().split()) == 2:
            time.sleep(0.5 if child_code == DIES_WITH_PARENT else 0.0)  # let the children set their death signal
            return parent, [int(p) for p in pids.read_text().split()]
        time.sleep(0.05)
    parent.kill()
    raise AssertionError("the parent did not start its two children")


def _gone(pid: int, within: float = 10.0) -> bool:
    """The process ended (a zombie waiting for a reaper counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_the_parent_stops_its_children(tmp_path):
    parent, pids = _start_parent(tmp_path, SLEEP)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    assert all(_gone(pid) for pid in pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) and /proc")
def test_a_child_stops_when_the_parent_is_killed_outright(tmp_path):
    parent, pids = _start_parent(tmp_path, DIES_WITH_PARENT)
    parent.kill()
    parent.wait(timeout=30)
    try:
        assert all(_gone(pid) for pid in pids)
    finally:
        for pid in pids:
            if not _gone(pid, within=0):
                os.kill(pid, signal.SIGKILL)
