"""How much faster ``frugalseg bench --jobs N`` is than one run at a time: the ``parallel_efficiency`` of matrix.yaml.

``frugalseg bench --jobs N`` trains N runs side by side, each with ``cores // N`` threads
(:func:`frugalseg.bench.parallel.threads_per_job`). Whether that pays depends on the machine: small
128x128 convolutions may scale poorly over threads (then side by side wins), or well (then it barely
does). This script trains one shipped config under the engine twice, on a quiet machine:

1. alone, with every core's thread: images/s ``A``;
2. ``--jobs`` copies at once, each in its own process with ``cores // jobs`` threads, started together
   (each loads its data first, then waits for a common start time): images/s ``s_i`` each.

The speed-up of side by side is ``sum(s_i) / A`` and ``parallel_efficiency = speed-up / jobs``, the figure
the bench's time estimates (``frugalseg bench --list``) use. Timed iterations follow untimed warm-up ones,
as in ``method_throughput.py`` (whose :func:`measure` trains each part). With ``--out`` the result
replaces the ``<!-- side_by_side -->`` block of that page. Run it with nothing else on the CPU.

    python benchmarks/side_by_side.py --data /path/to/ACDC --out docs/performance.md
    python benchmarks/side_by_side.py --smoke   # seconds, on the bundled sample: checks the script only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from method_throughput import SMOKE, measure  # this folder is on sys.path
from train_step import PAGE_HEADER

from frugalseg.bench.provenance import machine_description, utc_now
from frugalseg.config import DATA_ENV
from frugalseg.files import replace_marked_block


def launch(args: argparse.Namespace, threads: int, start_at: float) -> subprocess.Popen[str]:
    """One training part in its own interpreter, with ``threads`` intra-op threads."""
    cmd = [sys.executable, __file__, "--part", "--config", args.config, "--data", args.data,
           "--schedule", args.schedule, "--warmup", str(args.warmup), "--iters", str(args.iters),
           "--threads", str(threads), "--start-at", str(start_at), *(f"--set={e}" for e in args.extra)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def collect(procs: list[subprocess.Popen[str]]) -> list[float]:
    """images/s of each part, after all of them have ended."""
    speeds = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a timed part failed with exit status {proc.returncode}")
        speeds.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:]))
    return speeds


def part(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)

    def wait_for_start() -> None:
        time.sleep(max(0.0, args.start_at - time.time()))

    extra = [f"train.threads={args.threads}", *args.extra]
    result = measure(args.config, args.data, args.schedule, args.warmup, args.iters, extra,
                     before_training=wait_for_start)
    print("RESULT " + json.dumps(result["images_per_second"]), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get(DATA_ENV), help=f"the ACDC folder (default: ${DATA_ENV})")
    p.add_argument("--config", default="acdc_supervised", help="shipped config to train")
    p.add_argument("--schedule", default="quick")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads of the run alone")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations")
    p.add_argument("--iters", type=int, default=60, help="timed iterations")
    p.add_argument("--load-seconds", type=float, default=60.0,
                   help="time given to every part to load its data before the common start")
    p.add_argument("--set", dest="extra", action="append", default=[], help="config override")
    p.add_argument("--smoke", action="store_true", help="tiny, on the bundled sample: checks the script")
    p.add_argument("--out", help="Markdown page whose side_by_side block to replace")
    p.add_argument("--part", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.smoke and not args.data:
        p.error(f"--data is required (or set ${DATA_ENV})")
    if args.smoke:
        from frugalseg.data.sample import sample_path

        args.data, args.config, args.warmup, args.iters = str(sample_path()), "sample_supervised", 1, 2
        args.extra, args.load_seconds = [*SMOKE, *args.extra], 20.0
    if args.part:
        part(args)
        return 0
    if args.jobs < 2 or args.cores < args.jobs:
        raise SystemExit(f"--jobs {args.jobs} with --cores {args.cores}: side by side needs 2 <= jobs <= cores")
    threads = args.cores // args.jobs
    alone = collect([launch(args, args.cores, time.time() + args.load_seconds)])[0]
    start = time.time() + args.load_seconds
    each = collect([launch(args, threads, start) for _ in range(args.jobs)])
    speedup = sum(each) / alone
    body = "\n".join([
        "## Runs side by side (`benchmarks/side_by_side.py`)",
        "",
        f"`{args.config}`, schedule `{args.schedule}`{' ' + ' '.join(args.extra) if args.extra else ''}: "
        f"{args.iters} timed iterations after {args.warmup} warm-up, trained by the engine. Measured "
        f"{utc_now()} on {machine_description()}, nothing else running.",
        "",
        "| how | threads each | images / s each | images / s in all | vs alone |",
        "| --- | --- | --- | --- | --- |",
        f"| one run alone | {args.cores} | {alone:.1f} | {alone:.1f} | 1.00x |",
        f"| {args.jobs} runs side by side | {threads} | {' / '.join(f'{s:.1f}' for s in each)} | {sum(each):.1f} "
        f"| {speedup:.2f}x |",
        "",
        f"`parallel_efficiency` (speed-up / jobs, the figure of `estimates` in matrix.yaml): "
        f"**{speedup / args.jobs:.2f}**.",
    ])
    print(body)
    if args.out:
        replace_marked_block(args.out, "side_by_side", body, PAGE_HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
