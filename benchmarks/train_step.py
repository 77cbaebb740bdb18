"""Training-step speed and memory: a bare PyTorch loop against the engine, side by side in one run.

(a) a bare loop: the default U-Net, forward + 0.5·(CE + Dice) + backward + SGD step on in-memory
    tensors, in four variants (fp32; channels_last; bf16 autocast; bf16 autocast + channels_last);
(b) the engine training ``supervised`` on ACDC slices with augmentation, same batch, size and
    precision (fp32 and the engine's default fast path).
Each part runs in its own subprocess so its peak RSS is its own. Results go to stdout as a
Markdown table and, with ``--out``, into ``docs/performance.md``.

    python benchmarks/train_step.py --data /path/to/ACDC --out docs/performance.md
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from frugalseg.config import DATA_ENV
from frugalseg.files import replace_marked_block

PAGE_HEADER = "# Performance\n\nWritten by the scripts in `benchmarks/`, one block each.\n"


def bare(batch: int, size: int, iters: int, warmup: int, bf16: bool, channels_last: bool) -> dict:
    from frugalseg.losses.dice import dice_ce_loss
    from frugalseg.nets import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 4, (batch, size, size))
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        ce, dice = dice_ce_loss(logits, y)
        loss = 0.5 * (ce + dice)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return {"seconds_per_iteration": sum(times) / len(times)}


def engine(data: str, batch: int, size: int, iters: int, warmup: int, precision: str, channels_last: bool) -> dict:
    from frugalseg.config import load_config
    from frugalseg.train import train_run

    total = warmup + iters
    config = load_config("acdc_supervised", [
        f"data.root={data}", f"train.batch_size={batch}", f"data.patch_size=[{size},{size}]",
        f"train.iterations={total}", f"train.val_every={total + 1}", f"train.checkpoint_every={total}",
        "train.log_every=1", f"train.precision={precision}", f"train.channels_last={str(channels_last).lower()}",
    ])
    with tempfile.TemporaryDirectory() as tmp:
        train_run(config, Path(tmp) / "run", progress=False)
        with (Path(tmp) / "run" / "train_log.csv").open() as fh:
            rows = list(csv.DictReader(fh))
    times = [float(r["seconds_per_iteration"]) for r in rows[warmup:]]
    return {"seconds_per_iteration": sum(times) / len(times)}


def run_part(args: argparse.Namespace) -> None:
    if args.part == "bare":
        res = bare(args.batch, args.size, args.iters, args.warmup, args.bf16, args.channels_last)
    else:
        res = engine(args.data, args.batch, args.size, args.iters, args.warmup,
                     "bf16" if args.bf16 else "off", args.channels_last)
    res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(res))


def child(args: argparse.Namespace, part: str, bf16: bool, channels_last: bool) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--data", args.data, "--batch", str(args.batch),
           "--size", str(args.size), "--iters", str(args.iters), "--warmup", str(args.warmup)]
    cmd += ["--bf16"] if bf16 else []
    cmd += ["--channels-last"] if channels_last else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get(DATA_ENV), help=f"the ACDC folder (default: ${DATA_ENV})")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--part", choices=["bare", "engine"])
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if not args.data:
        p.error(f"--data is required (or set ${DATA_ENV})")
    if args.part:
        run_part(args)
        return
    variants = [
        ("(a) bare loop, fp32", "bare", False, False),
        ("(a) bare loop, channels_last", "bare", False, True),
        ("(a) bare loop, bf16 autocast", "bare", True, False),
        ("(a) bare loop, bf16 autocast + channels_last", "bare", True, True),
        ("(b) engine `supervised`, fp32", "engine", False, False),
        ("(b) engine `supervised`, default (bf16 + channels_last)", "engine", True, True),
    ]
    results = {}
    for name, part, bf16, cl in variants:
        results[name] = child(args, part, bf16, cl)
        print(name, results[name], flush=True)
    fp32 = results["(a) bare loop, fp32"]["seconds_per_iteration"]
    lines = [
        "| variant | s / iteration | images / s | speed-up vs bare fp32 | peak RSS (GiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        s = r["seconds_per_iteration"]
        lines.append(f"| {name} | {s:.2f} | {args.batch / s:.1f} | {fp32 / s:.2f}x | {r['peak_rss_gib']:.2f} |")
    eng = results["(b) engine `supervised`, default (bf16 + channels_last)"]["seconds_per_iteration"]
    bare_fast = results["(a) bare loop, bf16 autocast + channels_last"]["seconds_per_iteration"]
    eng32 = results["(b) engine `supervised`, fp32"]["seconds_per_iteration"]
    lines += [
        "",
        "- engine / bare loop at the same precision (bf16 + channels_last): "
        f"**{eng / bare_fast:.2f}x** (target <= 1.15)",
        f"- engine fp32 / bare fp32: {eng32 / fp32:.2f}x",
        f"- engine default vs engine fp32: **{eng32 / eng:.2f}x faster** (target >= 3)",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        header = (
            f"## Training step (`benchmarks/train_step.py`)\n\n"
            f"Batch {args.batch}, {args.size}x{args.size}, default U-Net (16-256), {args.iters} timed iterations "
            f"after {args.warmup} warm-up. Measured {dt.date.today()} on {platform.machine()}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}; all rows in one run.\n\n"
        )
        replace_marked_block(args.out, "train_step", header + table, PAGE_HEADER)

if __name__ == "__main__":
    main()
