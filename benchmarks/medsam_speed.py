"""LiteMedSAM on the CPU: seconds per slice and per box, and the time to pseudo-label every ACDC box of a budget.

LiteMedSAM encodes each slice once (the TinyViT image encoder, the bulk of the time) and decodes all the
slice's boxes together (prompt encoder + mask decoder). This script simulates a budget's annotations
(seed 0, as the bench rows), takes a seeded sample of its boxed slices, and times, after one untimed
warm-up slice, ``embed`` (pre-processing + encoder) and ``decode`` (all the slice's boxes) separately with
a fixed number of torch threads. It reports wall seconds and the process's CPU seconds: on a shared CPU
(the load average is reported) wall time says how busy the machine was, while CPU seconds with one
thread approximate what the same work takes on an idle core (memory-bandwidth contention aside).

``--list`` runs no model: it counts the boxed slices and boxes of each budget and prints the estimated
pre-processing time from the seconds given (``--per-slice``, ``--per-box``, e.g. from a measurement), i.e.
``slices * per_slice + boxes * per_box``.

    python benchmarks/medsam_speed.py --data ../shared/data/ACDC --slices 10 --threads 1 \\
        --json medsam_speed.json --page docs/methods/medsam_boxes.md
    python benchmarks/medsam_speed.py --data ../shared/data/ACDC --render medsam_speed.json \\
        --page docs/methods/medsam_boxes.md   # the block again from a saved measurement
    python benchmarks/medsam_speed.py --data ../shared/data/ACDC --list --per-slice 1.2 --per-box 0.1
    python benchmarks/medsam_speed.py --smoke   # the bundled sample, 2 slices: checks the script only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from frugalseg.bench.provenance import machine_description, utc_now
from frugalseg.data.simulate import simulate_items
from frugalseg.data.sources import open_source
from frugalseg.files import replace_marked_block
from frugalseg.pseudolabels.generate import item_prompts, needs_pseudolabel

BUDGETS = ("masks7_boxes", "masks3_boxes_tags")


def boxed_slices(data: str, budget: str | None) -> tuple[list, dict]:
    """The boxed training slices and the budget's simulated annotations (seed 0; no budget: boxes everywhere)."""
    source = open_source(data)
    items = source.training_slices()
    if budget is None:
        ann = simulate_items(items, source.classes, source.num_classes, "boxes", 0)
    else:
        ann = simulate_items(items, source.classes, source.num_classes, "budget", 0, budget=budget)
    boxed = [it for it in items if needs_pseudolabel(ann.items.get(it.item_id), None)]
    return boxed, ann.items


def count(data: str, budget: str) -> tuple[int, int]:
    boxed, anns = boxed_slices(data, budget)
    return len(boxed), sum(len(anns[it.item_id].boxes) for it in boxed)


def measure(data: str, budget: str | None, slices: int, seed: int) -> dict:
    from frugalseg.pseudolabels.litemedsam import LiteMedSAM

    boxed, anns = boxed_slices(data, budget)
    chosen = random.Random(seed).sample(boxed, min(slices + 1, len(boxed)))
    model = LiteMedSAM()
    wall: dict[str, list[float]] = {"embed": [], "decode": []}
    cpu: dict[str, list[float]] = {"embed": [], "decode": []}
    boxes = 0
    for n, item in enumerate(chosen):
        prompts, _ = item_prompts(anns[item.item_id], item.shape, None)
        w0, c0 = time.perf_counter(), time.process_time()
        embedding, new_size = model.embed(item.image)
        w1, c1 = time.perf_counter(), time.process_time()
        model.decode(embedding, new_size, item.shape, prompts)
        w2, c2 = time.perf_counter(), time.process_time()
        if n == 0:
            continue  # warm-up
        wall["embed"].append(w1 - w0)
        wall["decode"].append(w2 - w1)
        cpu["embed"].append(c1 - c0)
        cpu["decode"].append(c2 - c1)
        boxes += len(prompts)
    out: dict = {"budget": budget, "slices": len(wall["embed"]), "boxes": boxes, "threads": torch.get_num_threads()}
    for name, t in (("wall", wall), ("cpu", cpu)):
        out[f"{name}_per_slice_embed_s"] = float(np.mean(t["embed"]))
        out[f"{name}_per_box_decode_s"] = sum(t["decode"]) / max(boxes, 1)
        out[f"{name}_per_box_s"] = (sum(t["embed"]) + sum(t["decode"])) / max(boxes, 1)
    out.update(load_average=os.getloadavg(), machine=machine_description("cpu"), when=utc_now())
    return out


def estimate_lines(counts: dict[str, tuple[int, int]], per_slice: float, per_box: float) -> list[str]:
    lines = [f"estimate at {per_slice:.2f} s per slice (encoder) + {per_box:.2f} s per box (decoder):"]
    for budget, (n_slices, n_boxes) in counts.items():
        hours = (n_slices * per_slice + n_boxes * per_box) / 3600
        lines.append(f"  {budget}: {n_slices} boxed slices, {n_boxes} boxes -> {hours:.2f} h")
    return lines


def render(result: dict, counts: dict[str, tuple[int, int]], command: str) -> str:
    """The page block: the measurement, its conditions, and the estimate per budget (wall and CPU seconds)."""
    la = ", ".join(f"{v:.1f}" for v in result["load_average"])
    lines = [f"`{command}`, {result['when']}, {result['machine']}; load average {la} (a shared CPU: wall "
             f"seconds are inflated by the other processes, CPU seconds of the one thread are not). "
             f"{result['slices']} timed slices of `{result['budget']}` with {result['boxes']} boxes, after one "
             "warm-up slice.", "",
             "| seconds | encoder per slice | decoder per box | per box, all in | "
             + " | ".join(f"all of `{b}` ({n} slices, {k} boxes)" for b, (n, k) in counts.items()) + " |",
             "|---" * (4 + len(counts)) + "|"]
    for name in ("wall", "cpu"):
        per_slice, per_box = result[f"{name}_per_slice_embed_s"], result[f"{name}_per_box_decode_s"]
        hours = [(n * per_slice + k * per_box) / 3600 for n, k in counts.values()]
        lines.append(f"| {name} | {per_slice:.2f} | {per_box:.3f} | {result[f'{name}_per_box_s']:.2f} | "
                     + " | ".join(f"{h:.2f} h" for h in hours) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ACDC folder (SSL4MIS layout)")
    parser.add_argument("--budget", default="masks7_boxes", choices=BUDGETS)
    parser.add_argument("--slices", type=int, default=10, help="timed slices (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (fixed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="count the boxes and estimate; run no model")
    parser.add_argument("--per-slice", type=float, help="with --list: seconds per slice (encoder)")
    parser.add_argument("--per-box", type=float, help="with --list: seconds per box (decoder)")
    parser.add_argument("--smoke", action="store_true", help="the bundled sample, 2 slices")
    parser.add_argument("--json", type=Path, help="also write the measurement to this JSON file")
    parser.add_argument("--render", type=Path, help="write the page block from a --json file; measure nothing")
    parser.add_argument("--page", type=Path, help="replace the <!-- medsam_speed --> block of this page")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.smoke:
        from frugalseg.data.sample import sample_path

        result = measure(str(sample_path()), None, 2, args.seed)  # 4 patients: boxes everywhere
        print(json.dumps(result, indent=2))
        return
    if not args.data:
        parser.error("--data is required (or --smoke)")
    counts = {budget: count(args.data, budget) for budget in BUDGETS}
    if args.list:
        if args.per_slice is None or args.per_box is None:
            parser.error("--list needs --per-slice and --per-box (seconds, from a measurement)")
        print("\n".join(estimate_lines(counts, args.per_slice, args.per_box)))
        return
    if args.render:
        saved = json.loads(args.render.read_text())
        result, command = saved["result"], saved["command"]
    else:
        result = measure(args.data, args.budget, args.slices, args.seed)
        command = (f"python benchmarks/medsam_speed.py --data DATA --budget {args.budget} --slices {args.slices} "
                   f"--threads {args.threads} --seed {args.seed}")
        if args.json:
            args.json.write_text(json.dumps({"result": result, "command": command}, indent=2))
    block = render(result, counts, command)
    print(block)
    if args.page:
        replace_marked_block(args.page, "medsam_speed", block)


if __name__ == "__main__":
    main()
