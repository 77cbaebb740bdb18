"""``frugalseg bench --active-learning --jobs N``: N worker processes share the loop's rounds.

Why processes: on the 2-core CPU the quick schedule was sized for, two trainings with one thread each go
1.2 times as fast as one with two threads (:mod:`frugalseg.bench.parallel`, where the rows do the same).
The loop's trajectories (one strategy and seed each) are independent once their round 0 is trained, so
workers running the same loop can share them: each claims a round under a lock file before it trains it
(:meth:`frugalseg.bench.active_learning_run.LoopRunner.claimed_round`), goes on to another trajectory when a
round is claimed, and waits only when every round left is claimed or follows one that is. No worker needs
to know how many others there are, so a second ``frugalseg bench --active-learning`` started by hand beside
a first shares the work the same way.

The parent starts the workers with the rows' scheduler (:func:`frugalseg.bench.parallel.run_jobs`: one
line when each ends, failures reported, children stopped on Ctrl-C or SIGTERM, a child stops if the parent
dies), then writes the page from the records once all have ended. A worker's output goes to
``<runs>/active_learning/logs/worker<k>.out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from frugalseg.bench.active_learning import Log, LoopOptions, load_loop_spec
from frugalseg.bench.parallel import JobFailure, Launcher, exit_with_parent, gpu_devices, run_jobs, threads_per_job
from frugalseg.errors import FrugalsegError

__all__ = ["LoopWorker", "run_workers", "worker_command", "worker_main"]


@dataclass(frozen=True)
class LoopWorker:
    """One worker process of the loop (a job of :func:`~frugalseg.bench.parallel.run_jobs`)."""

    number: int
    opts: LoopOptions
    spec: str | None
    """The loop spec as given on the command line (``None``: the shipped one)."""

    @property
    def name(self) -> str:
        return f"active-learning worker {self.number}"

    @property
    def log_file(self) -> Path:
        return self.opts.runs_dir / "logs" / f"worker{self.number}.out"


def worker_command(worker: LoopWorker, threads: int, parent_pid: int | None = None) -> list[str]:
    """A worker's command line: this module as a script, every value in ``--key=value`` form."""
    opts = worker.opts
    return [
        sys.executable, "-m", "frugalseg.bench.active_learning_workers",
        *([f"--spec={worker.spec}"] if worker.spec else []),
        f"--data={opts.data_root()}", f"--schedule={opts.schedule}", f"--seeds={','.join(map(str, opts.seeds))}",
        *([f"--runs={opts.runs}"] if opts.runs is not None else []), f"--out={opts.out}",
        f"--threads={threads}", f"--parent-pid={os.getpid() if parent_pid is None else parent_pid}",
        *([f"--device={opts.device}"] if opts.device is not None else []),
        *(f"--set={s}" for s in opts.extra),
    ]


def run_workers(opts: LoopOptions, spec: str | None, jobs: int, log: Log = print) -> list[JobFailure]:
    """Run the loop in ``jobs`` worker processes, CPUs / jobs threads each (one GPU each on a GPU machine).

    Returns the workers that failed; the others ran to the end (a failed worker's rounds are taken up by
    the others only if they had not ended yet, so a failure can leave rounds unrecorded: run again).
    """
    threads = threads_per_job(jobs)
    devices = gpu_devices(jobs)
    workers = [LoopWorker(k + 1, opts, spec) for k in range(jobs)]
    gpus = "" if devices is None else f", GPUs {', '.join(devices)} (one per worker)"
    log(f"active-learning loop in {jobs} worker processes, {threads} thread{'s' * (threads > 1)} each{gpus}; "
        f"their output in {workers[0].log_file.parent}")
    return run_jobs(workers, jobs, Launcher[LoopWorker](threads, devices, command=worker_command), log)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m frugalseg.bench.active_learning_workers",
                                description="one worker of frugalseg bench --active-learning --jobs N")
    p.add_argument("--spec", help="the loop spec (default: the shipped one)")
    p.add_argument("--data", required=True)
    p.add_argument("--schedule", required=True)
    p.add_argument("--seeds", required=True, type=lambda s: tuple(int(x) for x in s.split(",")))
    p.add_argument("--runs", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", required=True, type=int)
    p.add_argument("--parent-pid", type=int)
    p.add_argument("--device")
    p.add_argument("--set", dest="extra", action="append", default=[])
    return p


def worker_main(argv: Sequence[str] | None = None) -> int:
    """Train the rounds this worker can claim until every round is recorded; 0 when done."""
    from frugalseg.bench.active_learning_run import LoopRunner

    args = _parser().parse_args(argv)
    exit_with_parent(args.parent_pid)
    try:
        opts = LoopOptions(spec=load_loop_spec(args.spec), data=args.data, schedule=args.schedule, seeds=args.seeds,
                           runs=args.runs, out=args.out, extra=[f"train.threads={args.threads}", *args.extra],
                           device=args.device)
        records = LoopRunner(opts, log=lambda line: print(line, flush=True)).run()
    except FrugalsegError as exc:
        print(f"frugalseg bench --active-learning: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"every round recorded ({len(records)})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
