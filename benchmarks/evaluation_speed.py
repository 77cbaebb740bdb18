"""Evaluation speed: the ACDC validation volumes through ``evaluate_cases`` with a random default U-Net.

Reports the split between inference and metrics for a few precision / layout / batch settings, and
the metrics time on realistic predictions (each reference shifted by a few voxels), since a random
network predicts few structures. Volumes are read with h5py directly. All rows come from one run;
with ``--out`` the table replaces the ``<!-- evaluation_speed -->`` block of that page.

    python benchmarks/evaluation_speed.py --data "$FRUGALSEG_DATA" --out docs/performance.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from frugalseg.files import replace_marked_block

PAGE_HEADER = "# Performance\n\nWritten by the scripts in `benchmarks/`, one block each.\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding val.list and data/")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Markdown page whose evaluation_speed block to replace")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    import monai.metrics  # noqa: F401  (its one-off import cost is not evaluation time)

    monai_import = time.perf_counter() - t

    from frugalseg.data.types import Case
    from frugalseg.evaluation.inference import EvalTimings, evaluate_cases
    from frugalseg.evaluation.metrics import compute_volume_metrics
    from frugalseg.nets import UNet

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    cases = []
    for name in (args.data / "val.list").read_text().split():
        with h5py.File(args.data / "data" / f"{name}.h5", "r") as f:
            cases.append(Case(name, name.split("_")[0], f["image"][()], f["label"][()]))
    read = time.perf_counter() - t
    slices = sum(c.image.shape[0] for c in cases)

    torch.manual_seed(0)
    net = UNet().eval()
    lines = ["| precision | layout | batch | inference | metrics | total |", "| --- | --- | --- | --- | --- | --- |"]
    for amp, channels_last, batch in [(False, True, 4), (True, True, 8), (False, False, 4)]:
        net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        timings = EvalTimings()
        evaluate_cases(net, cases, batch_size=batch, amp=amp, channels_last=channels_last, timings=timings)
        lines.append(f"| {'bf16 autocast' if amp else 'fp32'} | {'channels-last' if channels_last else 'contiguous'} "
                     f"| {batch} | {timings.inference:.1f} s | {timings.metrics:.2f} s "
                     f"| {timings.inference + timings.metrics:.1f} s |")
    t = time.perf_counter()
    for c in cases:
        compute_volume_metrics(np.roll(c.label, (3, -2), axis=(1, 2)), c.label, 4, case_id=c.case_id)
    realistic = time.perf_counter() - t
    body = "\n".join([
        "## Evaluation (`benchmarks/evaluation_speed.py`)",
        "",
        f"The {len(cases)} ACDC validation volumes ({slices} slices), default U-Net (randomly initialised), "
        f"256x256 input. Measured {dt.date.today()} on {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; all rows in one run.",
        "",
        *lines,
        "",
        f"- A random network predicts few structures, so its metrics column is a lower bound; on realistic "
        f"predictions (each reference shifted by (3, -2) pixels) the metrics of the {len(cases)} volumes take "
        f"{realistic:.2f} s.",
        f"- Reading the volumes: {read:.2f} s; importing MONAI's metrics once: {monai_import:.1f} s.",
    ])
    print(body)
    if args.out:
        replace_marked_block(args.out, "evaluation_speed", body, PAGE_HEADER)


if __name__ == "__main__":
    main()
