"""Evaluation speed: the ACDC validation volumes through ``evaluate_cases`` with a random default U-Net.

Reports the split between inference and metrics for a few precision / layout / batch settings, and
the metrics time on realistic predictions (each reference shifted by a few voxels), since a random
network predicts few structures. Volumes are read with h5py directly.

    python benchmarks/evaluation_speed.py --data ../shared/data/ACDC --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding val.list and data/")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import monai.metrics  # noqa: F401  (its one-off import cost is not evaluation time)

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
    print(f"{len(cases)} volumes, {sum(c.image.shape[0] for c in cases)} slices, read in "
          f"{time.perf_counter() - t:.2f} s")

    torch.manual_seed(0)
    net = UNet().eval()
    print("| precision | layout | batch | inference | metrics | total |\n| --- | --- | --- | --- | --- | --- |")
    for amp, channels_last, batch in [(False, True, 4), (True, True, 8), (False, False, 4)]:
        net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        timings = EvalTimings()
        evaluate_cases(net, cases, batch_size=batch, amp=amp, channels_last=channels_last, timings=timings)
        print(f"| {'bf16' if amp else 'fp32'} | {'channels-last' if channels_last else 'contiguous'} | {batch} | "
              f"{timings.inference:.2f} s | {timings.metrics:.2f} s | {timings.inference + timings.metrics:.2f} s |")
    t = time.perf_counter()
    for c in cases:
        compute_volume_metrics(np.roll(c.label, (3, -2), axis=(1, 2)), c.label, 4, case_id=c.case_id)
    print(f"metrics on realistic predictions: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
