"""Train several row x seed runs side by side, each in its own process: ``frugalseg bench --jobs N``.

Why processes: on the 2-core CPU the quick bench was sized for, two runs with one intra-op thread each
train 1.2 times as many images per second as one run with two threads (small 128x128 convolutions
scale poorly over threads; ``estimates`` in ``matrix.yaml``, measured by ``benchmarks/side_by_side.py``).
A process per run also keeps one run's crash from taking the others down.

The parent (:func:`run_jobs`) starts the jobs in the order given (the matrix order: every seed of a row
before the next row), at most ``workers`` at a time, and prints one line when a job starts and one when it
ends. A child is ``python -m frugalseg.bench.parallel`` (:func:`child_main`), which calls
:func:`frugalseg.bench.runner.train_and_record`: the same train / skip / resume decision as a sequential
bench, so a killed bench restarted with any ``--jobs`` skips finished runs and resumes partial ones. The
child also scores its run and writes its record (``--records``) as soon as it is trained, so a run that
ends before the bench (or the session) does is kept in a record even if the bench is then killed.

A child's stdout and stderr go to ``<runs>/logs/<label>-s<seed>.out`` (appended, one header per attempt),
not inside the run folder: the engine refuses to start a fresh run in a folder holding a file it did not
write, and deletes a half-started run folder (a log inside it included) when it starts that run over.

Threads: a child trains with the override ``train.threads=<threads>`` (placed before the bench's ``--set``
overrides, so an explicit ``--set train.threads=...`` wins) and ``OMP_NUM_THREADS=<threads>`` in its
environment. The bench's config check ignores ``train.threads`` (:data:`frugalseg.bench.runner.IGNORED_KEYS`):
the thread count changes the speed, not what a run learns, so a run trained under ``--jobs 2`` is the same
row as one trained under ``--jobs 1``.

A job that fails is reported (row, seed, exit status, log file) and the other jobs go on; :func:`run_jobs`
returns the failures. Interrupted (Ctrl-C, SIGTERM), the parent terminates its children before it exits;
on Linux a child also stops if the parent dies without cleaning up (SIGKILL). The children run in their own
session, so a Ctrl-C in the terminal reaches the parent only, which stops them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, Protocol, TypeVar

from frugalseg.bench.matrix import Row, parse_row
from frugalseg.bench.records import has_record, record_dir
from frugalseg.bench.runner import finished, run_dir
from frugalseg.errors import ConfigError, FrugalsegError

__all__ = [
    "Job",
    "JobFailure",
    "JobLike",
    "Launcher",
    "child_command",
    "child_main",
    "cpu_count",
    "exit_with_parent",
    "gpu_devices",
    "log_path",
    "run_jobs",
    "spawn",
    "threads_per_job",
    "train_side_by_side",
    "unfinished_jobs",
]

POLL_SECONDS = 0.5
"""How often the parent looks at its children: a run lasts minutes, so half a second costs nothing."""

STOP_GRACE_SECONDS = 10.0
"""How long stopped children get to exit after SIGTERM before they are killed."""

Log = Callable[[str], None]


class Process(Protocol):
    """What the scheduler needs of a child (:class:`subprocess.Popen` has it; tests pass fakes)."""

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class JobLike(Protocol):
    """What the scheduler needs of a job: a name for its progress lines and the file its child writes to.

    A row x seed run (:class:`Job`) is one; a worker of the active-learning loop
    (:class:`frugalseg.bench.active_learning_workers.LoopWorker`) is another.
    """

    @property
    def name(self) -> str: ...

    @property
    def log_file(self) -> Path: ...


J = TypeVar("J", bound=JobLike)

Launch = Callable[[J, int], Process]
"""Start ``job`` on worker slot ``slot`` (0-based) and return its process."""

Command = Callable[[J, int], list[str]]
"""The command line of ``job``'s child, given its intra-op thread count."""


def log_path(runs: str | Path, label: str, seed: int) -> Path:
    """The child's output file; beside the run folders, not inside one (see the module docstring)."""
    return Path(runs) / "logs" / f"{label}-s{seed}.out"


@dataclass(frozen=True)
class Job:
    """One row x seed run, trained (or skipped, or resumed) by a child process."""

    row: Row
    seed: int
    data: str
    runs: Path
    schedule: str
    extra: tuple[str, ...] = ()
    records: Path | None = None
    """Where the child writes the run's record (``None``: no record, the run folder only)."""
    device: str | None = None
    """Device of the child's evaluation (training follows ``train.device``)."""

    @property
    def name(self) -> str:
        return f"{self.row.label} s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return run_dir(self.runs, self.row.label, self.seed)

    @property
    def log_file(self) -> Path:
        return log_path(self.runs, self.row.label, self.seed)


def _exit_text(returncode: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` (Popen reports a signal as a negative code)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _last_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a child's log (usually the exception), so the parent's report says why."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - tail_bytes))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


@dataclass(frozen=True)
class JobFailure:
    """A job whose child exited non-zero."""

    job: JobLike
    returncode: int
    last_line: str = ""

    def describe(self) -> str:
        return f"{self.job.name} ({_exit_text(self.returncode)}; output in {self.job.log_file})"


def cpu_count() -> int:
    """CPUs this process may use: the affinity mask where the OS has one (a container's limit, ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(jobs: int, cpus: int | None = None) -> int:
    """Intra-op threads of each of ``jobs`` side-by-side runs: the CPUs shared out, at least one."""
    return max(1, (cpu_count() if cpus is None else cpus) // jobs)


def gpu_devices(jobs: int) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` of each worker slot on a GPU machine; ``None`` where torch sees no GPU.

    Runs train on the GPU when there is one, and two runs sharing one GPU gain nothing the CPU measurement
    promises (and risk running out of its memory), so ``jobs`` GPUs are required: one of its own per child.

    Raises:
        ConfigError: fewer GPUs than ``jobs``.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(count)]
    ids = ids[:count]
    if jobs > len(ids):
        raise ConfigError(
            f"--jobs {jobs}: this machine has {len(ids)} GPU(s) and the runs train on them; side-by-side runs "
            f"need one GPU each, so give --jobs {max(1, len(ids))} or fewer (--jobs > 1 is meant for the CPU)"
        )
    return ids[:jobs]


def child_command(job: Job, threads: int, parent_pid: int | None = None) -> list[str]:
    """The command line of a child: this module as a script, every value in ``--key=value`` form.

    The ``=`` form keeps a value that starts with ``-`` (a negative override) from reading as an option.
    """
    return [
        sys.executable, "-m", "frugalseg.bench.parallel",
        f"--row={job.row.label}={job.row.spec}", f"--seed={job.seed}", f"--data={job.data}",
        f"--runs={job.runs}", f"--schedule={job.schedule}", f"--threads={threads}",
        f"--parent-pid={os.getpid() if parent_pid is None else parent_pid}",
        *([f"--records={job.records}"] if job.records is not None else []),
        *([f"--device={job.device}"] if job.device is not None else []),
        *(f"--set={s}" for s in job.extra),
    ]


def spawn(command: Sequence[str], **kwargs: Any) -> Process:
    """Start a child: :class:`subprocess.Popen`, behind a name of its own so tests can put fakes there."""
    return subprocess.Popen(command, **kwargs)


@dataclass
class Launcher(Generic[J]):
    """Starts a child per job with its thread count, its GPU (if any) and its output file.

    Args:
        threads: intra-op threads of each child.
        devices: ``CUDA_VISIBLE_DEVICES`` per worker slot (from :func:`gpu_devices`); ``None`` on CPU.
        command: the child's command line (default: a row x seed run, :func:`child_command`).
    """

    threads: int
    devices: Sequence[str] | None = None
    command: Command[J] = child_command  # type: ignore[assignment]  # the default launches row x seed Jobs

    def environment(self, slot: int) -> dict[str, str]:
        """The parent's environment with the child's threads (and GPU); unbuffered so its log is live."""
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1")
        if self.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.devices[slot]
        return env

    def __call__(self, job: J, slot: int) -> Process:
        job.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = self.command(job, self.threads)
        with job.log_file.open("ab") as out:
            out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} frugalseg bench: "
                      f"{' '.join(command)}\n".encode())
            out.flush()
            return spawn(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         env=self.environment(slot), start_new_session=True)


@dataclass
class _Running:
    job: JobLike
    process: Process
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Tally:
    """How many jobs ended of how many, for the parent's progress lines."""

    total: int
    ended: int = 0
    failures: list[JobFailure] = field(default_factory=list)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While jobs run, SIGTERM raises ``SystemExit(143)`` so that cleanup stops the children.

    Python's default SIGTERM ends the process at once, leaving the children training on their own.
    Only the main thread can set a handler; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(running: Sequence[_Running], log: Log, grace: float = STOP_GRACE_SECONDS) -> None:
    """Terminate the children still running, kill those that outlive ``grace``, and wait for all."""
    if not running:
        return
    log(f"stopping {len(running)} run(s): {', '.join(r.job.name for r in running)} "
        "(started again, the bench resumes them from their last checkpoint)")
    for r in running:
        try:
            r.process.terminate()
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for r in running:
        try:
            r.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait()


def _reap(running: dict[int, _Running], tally: _Tally, log: Log) -> bool:
    """Report and forget the children that ended (a failure into ``tally``); whether any did."""
    ended = False
    for slot, r in list(running.items()):
        code = r.process.poll()
        if code is None:
            continue
        ended = True
        del running[slot]
        tally.ended += 1
        seconds = time.monotonic() - r.started
        if code == 0:
            log(f"[{r.job.name}] trained in {seconds:.0f} s ({tally.ended} of {tally.total} runs ended)")
            continue
        failure = JobFailure(r.job, code, _last_line(r.job.log_file))
        tally.failures.append(failure)
        why = f": {failure.last_line}" if failure.last_line else ""
        log(f"[{r.job.name}] FAILED after {seconds:.0f} s ({_exit_text(code)}; output in {r.job.log_file}){why} "
            f"({tally.ended} of {tally.total} runs ended; the others go on)")
    return ended


def run_jobs(jobs: Sequence[J], workers: int, launch: Launch[J], log: Log = print,
             poll_seconds: float = POLL_SECONDS) -> list[JobFailure]:
    """Run ``jobs`` in order, at most ``workers`` at a time; return the ones that failed.

    A job starts as soon as a worker slot is free, so jobs start in the given order and end in any order.
    On any exception (Ctrl-C, SIGTERM, a failed launch) the running children are stopped before it propagates.
    """
    if workers < 1:
        raise ConfigError(f"--jobs {workers}: give 1 or more")
    pending = deque(jobs)
    running: dict[int, _Running] = {}
    tally = _Tally(len(jobs))
    with _sigterm_raises():
        try:
            while pending or running:
                for slot in range(workers):
                    if pending and slot not in running:
                        job = pending.popleft()
                        running[slot] = _Running(job, launch(job, slot))
                        log(f"[{job.name}] started (worker {slot + 1} of {workers}; output in {job.log_file})")
                if not _reap(running, tally, log):
                    time.sleep(poll_seconds)
        finally:
            _stop(list(running.values()), log)
    return tally.failures


def unfinished_jobs(rows: Sequence[Row], seeds: Sequence[int], data: str, runs: Path, schedule: str, *,
                    extra: Sequence[str] = (), records: Path | None = None, device: str | None = None,
                    log: Log | None = None) -> list[Job]:
    """The row x seed jobs still to train, every seed of a row before the next row.

    A run is finished with its record (``records`` given) or, without records, with its run folder's
    ``summary.json``; no child is started for it (it would only import torch to skip it). A child still
    decides train / skip / resume itself, so this is an economy, not the only guard. ``log`` hears of
    every skipped run.
    """
    jobs = []
    for row in rows:
        for seed in seeds:
            if records is not None:
                done = has_record(record_dir(records, row.label, seed))
            else:
                done = finished(run_dir(runs, row.label, seed))
            if done:
                if log is not None:
                    log(f"[{row.label} s{seed}] finished earlier: skipped")
                continue
            jobs.append(Job(row, seed, data, runs, schedule, tuple(extra), records=records, device=device))
    return jobs


def train_side_by_side(jobs: Sequence[Job], workers: int, devices: Sequence[str] | None = None,
                       log: Log = print) -> tuple[float, list[JobFailure]]:
    """Train ``jobs`` ``workers`` at a time, cpus/workers threads each (one GPU each where ``devices``).

    The one scheduler call of ``frugalseg bench --jobs`` (matrix rows or ``--row`` rows).
    Returns the wall seconds spent and the jobs that failed (the others went on).
    """
    if not jobs:
        return 0.0, []
    threads = threads_per_job(workers)
    gpus = "" if devices is None else f", GPUs {', '.join(devices)} (one per worker)"
    log(f"training {len(jobs)} runs, {min(workers, len(jobs))} at a time, {threads} thread"
        f"{'s' * (threads > 1)} each{gpus}; each run's output in {jobs[0].runs / 'logs'}")
    t0 = time.perf_counter()
    failures = run_jobs(jobs, workers, Launcher[Job](threads, devices), log)
    return time.perf_counter() - t0, failures


# ---------------------------------------------------------------------------------------------------- the child
def exit_with_parent(parent_pid: int | None) -> None:
    """On Linux, ask for SIGTERM when the parent dies (even by SIGKILL), so no run trains on as an orphan.

    Set here in the child rather than in a ``preexec_fn`` (unsafe in a parent with threads); if the parent
    is already gone by now, stop at once.
    """
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        raise SystemExit(f"frugalseg bench: parent process {parent_pid} is gone; not training")


def _child_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m frugalseg.bench.parallel",
                                description="one row x seed run of frugalseg bench --jobs (started by the bench)")
    p.add_argument("--row", required=True, help="label=config[,key=value...]")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--data", required=True)
    p.add_argument("--runs", required=True, type=Path)
    p.add_argument("--schedule", required=True)
    p.add_argument("--threads", required=True, type=int)
    p.add_argument("--parent-pid", type=int)
    p.add_argument("--records", type=Path, help="folder of the records (none: the run folder only)")
    p.add_argument("--device", help="device of the evaluation")
    p.add_argument("--set", dest="extra", action="append", default=[])
    return p


def child_main(argv: Sequence[str] | None = None) -> int:
    """Train (or skip, or resume), score and record one row x seed run with the runner's own logic; 0 when done."""
    from frugalseg.bench.runner import train_and_record

    args = _child_parser().parse_args(argv)
    exit_with_parent(args.parent_pid)
    row = parse_row(args.row)
    extra = [f"train.threads={args.threads}", *args.extra]
    try:
        if not train_and_record(row, args.seed, args.data, args.runs, args.records, args.schedule, extra,
                                log=lambda line: print(line, flush=True), device=args.device):
            print(f"[{row.label} s{args.seed}] finished earlier: skipped", flush=True)
    except FrugalsegError as exc:
        print(f"frugalseg bench [{row.label} s{args.seed}]: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main())
