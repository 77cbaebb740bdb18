"""How good are LiteMedSAM's box pseudo-labels? Dice per class against the true masks of the training slices.

For a seeded sample of the boxed training slices of a budget (seed-0 simulation, as the bench rows), the
script compares with the true label map:

* ``boxes filled``: each box filled with its class (smaller boxes on top), the label the boxes alone give;
* ``LiteMedSAM``: :func:`frugalseg.pseudolabels.generate.pseudolabel_items`'s label map;
* with ``--click-box N ...``: LiteMedSAM prompted by an N x N box around one simulated click per class
  (``frugalseg simulate --kind points``, seed 0, organs only) on the same slices, one row per N.

Dice of a class is computed per slice and averaged over the slices where the class is in the true mask or
in the pseudo-label (slices where both lack it are left out). ``--page`` writes the table into the
``<!-- medsam_quality -->`` block (or ``--block``) of that page. A ``--sample`` below the number of boxed
slices is a subset: the table says so.

    python scripts/medsam_quality.py --data ../shared/data/ACDC --sample 50 --threads 1 \\
        --click-box 8 16 32 --page docs/methods/medsam_boxes.md
    python scripts/medsam_quality.py --data ../shared/data/ACDC --sample 0 --page docs/results.md   # all
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from frugalseg.bench.provenance import machine_description, utc_now
from frugalseg.data.annotations import AnnotationFile
from frugalseg.data.candidates import rasterise
from frugalseg.data.simulate import simulate_items
from frugalseg.data.sources import open_source
from frugalseg.data.types import SliceItem
from frugalseg.files import replace_marked_block
from frugalseg.pseudolabels.generate import default_cache_dir, needs_pseudolabel, pseudolabel_items


def dice_rows(truth: Sequence[np.ndarray], labels: Sequence[np.ndarray], classes: Sequence[int]) -> list[float]:
    """Per class: mean Dice over the slices where the class is in ``truth`` or ``labels``."""
    out = []
    for c in classes:
        scores = []
        for t, p in zip(truth, labels, strict=True):
            tc, pc = t == c, p == c
            denom = tc.sum() + pc.sum()
            if denom:
                scores.append(2.0 * (tc & pc).sum() / denom)
        out.append(float(np.mean(scores)) if scores else float("nan"))
    return out


def pseudo_maps(items: Sequence[SliceItem], ann: AnnotationFile, click_box: int | None, cache: Path) -> list:
    from frugalseg.pseudolabels.litemedsam import LiteMedSAM

    out = pseudolabel_items(items, ann, lambda: LiteMedSAM().box_logits, click_box=click_box, cache_dir=cache)
    return [out.items[it.item_id].label_map.to_array() for it in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget", default="masks7_boxes")
    parser.add_argument("--sample", type=int, default=50, help="boxed slices to score (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--click-box", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--cache", type=Path, default=None, help="pseudo-label cache (default: the runs' cache)")
    parser.add_argument("--page", type=Path)
    parser.add_argument("--block", default="medsam_quality")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.cache or default_cache_dir()
    source = open_source(args.data)
    items = source.training_slices()
    names = [source.classes[c] for c in range(1, source.num_classes)]
    classes = list(range(1, source.num_classes))
    ann = simulate_items(items, source.classes, source.num_classes, "budget", 0, budget=args.budget)
    boxed = [it for it in items if needs_pseudolabel(ann.items.get(it.item_id), None)]
    chosen = sorted(random.Random(args.seed).sample(boxed, args.sample) if 0 < args.sample < len(boxed) else boxed,
                    key=lambda it: it.item_id)
    sub = AnnotationFile(classes=ann.classes, items={it.item_id: ann.items[it.item_id] for it in chosen})
    truth = [it.label for it in chosen]
    rows = [("boxes filled", [rasterise(it, sub.items[it.item_id], source.num_classes).box_label for it in chosen])]
    t0 = time.perf_counter()
    rows.append(("LiteMedSAM (its boxes)", pseudo_maps(chosen, sub, None, cache)))
    if args.click_box:
        clicks = simulate_items(chosen, source.classes, source.num_classes, "points", 0, include_background=False)
        for n in args.click_box:
            rows.append((f"LiteMedSAM (click box {n} px)", pseudo_maps(chosen, clicks, n, cache)))
    seconds = time.perf_counter() - t0
    what = "all" if len(chosen) == len(boxed) else f"a seeded subset (seed {args.seed}) of {len(chosen)} of the"
    lines = [f"Pseudo-label Dice per class against the true masks, on {what} {len(boxed)} boxed training slices "
             f"of `{args.budget}` (simulation seed 0). Command: `python scripts/medsam_quality.py --data DATA "
             f"--budget {args.budget} --sample {args.sample} --seed {args.seed} --threads {args.threads}"
             + "".join(f" {x}" for x in (["--click-box", *map(str, args.click_box)] if args.click_box else []))
             + f"`; {utc_now()}, {machine_description('cpu')}, load average {os.getloadavg()[0]:.1f}, "
             f"{seconds:.0f} s of inference (with the cache).", "",
             "| labels | " + " | ".join(names) + " | mean |", "|---" * (len(names) + 2) + "|"]
    for name, maps in rows:
        d = dice_rows(truth, maps, classes)
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in d) + f" | {np.nanmean(d):.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.page:
        replace_marked_block(args.page, args.block, text)


if __name__ == "__main__":
    main()
