"""How good are LiteMedSAM's box pseudo-labels? Dice per class against the true masks of the training slices.

For each budget (default: the two of the bench's LiteMedSAM rows) the script simulates its annotations as the
bench rows do (seed 0), takes its boxed training slices (all with ``--sample 0``, else a seeded subset) and
compares with the true label map:

* ``boxes filled``: each box filled with its class (smaller boxes on top), the label the boxes alone give;
* ``LiteMedSAM``: :func:`frugalseg.pseudolabels.generate.pseudolabel_items`'s label map;
* with ``--click-box N ...``: LiteMedSAM prompted by an N x N box around one simulated click per class
  (``frugalseg simulate --kind points``, seed 0, organs only) on the same slices, one row per N.

Dice of a class is computed per slice and averaged over the slices where the class is in the true mask or
in the pseudo-label (slices where both lack it are left out).

**Long runs.** Label maps go to the pseudo-label cache the bench reads (``--cache``, default
``$FRUGALSEG_CACHE/pseudolabels``), one file per slice written as soon as it is made, with a progress bar:
a run that is killed loses at most the slice in hand, and the same command run again takes every finished
slice from the cache (and a slice boxed alike in both budgets is made once). ``--list`` runs no model: per
budget, the boxed slices and boxes, how many are cached already, and the time the rest takes at the seconds
given (``--per-slice``, ``--per-box``: from ``benchmarks/medsam_speed.py``).

**Output.** ``--page`` writes one table (all budgets) into the ``<!-- medsam_quality -->`` block (or
``--block``) of that page; ``--tables DIR`` also writes each budget's table to ``DIR/medsam_quality_<budget>.md``,
the files ``docs/results.md`` includes under those budgets (``include`` in ``bench/matrix.yaml``).

    python scripts/medsam_quality.py --data ../shared/data/ACDC --list --per-slice 2.99 --per-box 0.147
    python scripts/medsam_quality.py --data ../shared/data/ACDC --sample 0 --threads 1 \\
        --page docs/methods/medsam_boxes.md --tables docs/results
    python scripts/medsam_quality.py --data ../shared/data/ACDC --budget masks7_boxes --sample 10 \\
        --click-box 16 32 --page docs/methods/medsam_boxes.md   # a quick look, clicks too
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frugalseg.bench.provenance import machine_description, utc_now
from frugalseg.data.annotations import AnnotationFile
from frugalseg.data.candidates import rasterise
from frugalseg.data.simulate import simulate_items
from frugalseg.data.sources import open_source
from frugalseg.data.sources.base import Source
from frugalseg.data.types import SliceItem
from frugalseg.files import replace_marked_block, write_text_atomic
from frugalseg.pseudolabels.generate import (
    LabelCache,
    default_cache_dir,
    item_prompts,
    needs_pseudolabel,
    pseudolabel_items,
)

BUDGETS = ("masks7_boxes", "masks3_boxes_tags")


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


@dataclass
class Budgeted:
    """One budget's boxed training slices (the seed-0 simulation of the bench rows) and their annotations."""

    name: str
    boxed: list[SliceItem]
    ann: AnnotationFile

    def chosen(self, sample: int, seed: int) -> list[SliceItem]:
        """All boxed slices (``sample`` 0 or at least their number), else a seeded subset, in item order."""
        picked = random.Random(seed).sample(self.boxed, sample) if 0 < sample < len(self.boxed) else self.boxed
        return sorted(picked, key=lambda it: it.item_id)


def boxed_slices(source: Source, budget: str) -> Budgeted:
    items = source.training_slices()
    ann = simulate_items(items, source.classes, source.num_classes, "budget", 0, budget=budget)
    return Budgeted(budget, [it for it in items if needs_pseudolabel(ann.items.get(it.item_id), None)], ann)


def list_lines(budgets: Sequence[Budgeted], cache: Path, per_slice: float | None, per_box: float | None) -> list[str]:
    """Per budget and in all: boxed slices, boxes, how many cached, and the time the rest takes (no model)."""
    store, lines, todo = LabelCache(cache), [], {}
    for b in budgets:
        boxes = cached = 0
        for it in b.boxed:
            prompts, classes = item_prompts(b.ann.items[it.item_id], it.shape, None)
            key = LabelCache.key(it.image, prompts, classes)
            boxes += len(prompts)
            if store.get(it.item_id, key) is not None:
                cached += 1
            else:
                todo[(it.item_id, key)] = len(prompts)
        lines.append(f"{b.name}: {len(b.boxed)} boxed slices, {boxes} boxes; {cached} slices cached in {cache}")
    left = f"to make: {len(todo)} slices with {sum(todo.values())} boxes (a slice boxed alike in two budgets once)"
    if per_slice is not None and per_box is not None:
        seconds = len(todo) * per_slice + sum(todo.values()) * per_box
        left += (f", about {seconds:,.0f} s ({seconds / 3600:.2f} h) at {per_slice:g} s per slice"
                 f" + {per_box:g} s per box")
    return [*lines, left]


def score(b: Budgeted, chosen: Sequence[SliceItem], click_boxes: Sequence[int], cache: Path,
          source: Source) -> list[tuple[str, list[float]]]:
    """Dice per class of each kind of label on ``chosen``: the filled boxes, LiteMedSAM, LiteMedSAM on clicks."""
    num_classes = source.num_classes
    classes = list(range(1, num_classes))
    sub = AnnotationFile(classes=b.ann.classes, items={it.item_id: b.ann.items[it.item_id] for it in chosen})
    truth = [it.label for it in chosen]
    filled = [rasterise(it, sub.items[it.item_id], num_classes).box_label for it in chosen]
    rows = [("boxes filled", dice_rows(truth, filled, classes)),
            ("LiteMedSAM (its boxes)", dice_rows(truth, pseudo_maps(chosen, sub, None, cache), classes))]
    if click_boxes:
        clicks = simulate_items(chosen, source.classes, num_classes, "points", 0, include_background=False)
        for n in click_boxes:
            rows.append((f"LiteMedSAM (click box {n} px)",
                         dice_rows(truth, pseudo_maps(chosen, clicks, n, cache), classes)))
    return rows


def table(rows: Sequence[tuple[str, str, int, list[float]]], names: Sequence[str]) -> list[str]:
    """``| budget | slices | labels | <classes> | mean |``, one line per budget and kind of label."""
    lines = ["| budget | slices | labels | " + " | ".join(names) + " | mean |", "|---" * (len(names) + 4) + "|"]
    for budget, what, n, dice in rows:
        cells = " | ".join(f"{v:.3f}" for v in dice)
        lines.append(f"| `{budget}` | {n} | {what} | {cells} | {np.nanmean(dice):.3f} |")
    return lines


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget", nargs="+", default=list(BUDGETS))
    parser.add_argument("--sample", type=int, default=50, help="boxed slices to score per budget (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--click-box", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--cache", type=Path, default=None, help="pseudo-label cache (default: the runs' cache)")
    parser.add_argument("--list", action="store_true", help="count slices, boxes and cached ones; run no model")
    parser.add_argument("--per-slice", type=float, help="with --list: seconds per slice (encoder)")
    parser.add_argument("--per-box", type=float, help="with --list: seconds per box (decoder)")
    parser.add_argument("--page", type=Path)
    parser.add_argument("--block", default="medsam_quality")
    parser.add_argument("--tables", type=Path, help="also write DIR/medsam_quality_<budget>.md per budget")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    cache = args.cache or default_cache_dir()
    source = open_source(args.data)
    budgets = [boxed_slices(source, name) for name in args.budget]
    if args.list:
        print("\n".join(list_lines(budgets, cache, args.per_slice, args.per_box)))
        return 0
    names = [source.classes[c] for c in range(1, source.num_classes)]
    rows, subsets, t0 = [], [], time.perf_counter()
    for b in budgets:
        chosen = b.chosen(args.sample, args.seed)
        rows += [(b.name, what, len(chosen), dice) for what, dice in
                 score(b, chosen, args.click_box, cache, source)]
        subsets.append(f"`{b.name}`: " + ("all" if len(chosen) == len(b.boxed) else
                                          f"a seeded subset (seed {args.seed}) of {len(chosen)} of the")
                       + f" {len(b.boxed)} boxed training slices")
    command = (f"python scripts/medsam_quality.py --data DATA --budget {' '.join(args.budget)} --sample {args.sample} "
               f"--seed {args.seed} --threads {args.threads}"
               + (" --click-box " + " ".join(map(str, args.click_box)) if args.click_box else ""))
    intro = (f"Pseudo-label Dice per class against the true masks ({'; '.join(subsets)}; simulation seed 0). "
             f"Command: `{command}`; {utc_now()}, {machine_description('cpu')}, load average "
             f"{os.getloadavg()[0]:.1f}, {time.perf_counter() - t0:.0f} s (slices already in the cache are read, "
             "not made again).")
    text = "\n".join([intro, "", *table(rows, names)])
    print(text)
    if args.page:
        replace_marked_block(args.page, args.block, text)
    if args.tables:
        for b in budgets:
            mine = [r for r in rows if r[0] == b.name]
            write_text_atomic(args.tables / f"{args.block}_{b.name}.md",
                              "\n".join([intro, "", *table(mine, names)]) + "\n", overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
