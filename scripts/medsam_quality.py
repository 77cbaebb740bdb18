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

**Before the merge** (``--unmerged``, into the ``<!-- medsam_unmerged -->`` block): the label map is made from
every box's own mask by the overlap rule (:mod:`frugalseg.pseudolabels.merge`). To say where a poor class
comes from, this mode runs LiteMedSAM on the chosen slices again (the cache holds merged maps only) and
scores each class's own mask (the union of its boxes' masks, cut at each box's edge, before any other box
competes for its pixels) against the true class and against the true class with its holes filled (the
myocardium's ring filled is the epicardium: the ring and the LV cavity), beside the merged label; then,
pixels pooled over the slices, where each true class's pixels end up in the merged label.

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
    python scripts/medsam_quality.py --data ../shared/data/ACDC --budget masks7_boxes --sample 60 --unmerged \\
        --page docs/methods/medsam_boxes.md
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
from scipy import ndimage

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
from frugalseg.pseudolabels.litemedsam import BoxPrompt
from frugalseg.pseudolabels.merge import resolve_boxes

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


def mask_dice(truth: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Mean Dice of binary masks over the slices where the true or the predicted mask is not empty."""
    pairs = [(t, m) for t, m in zip(truth, masks, strict=True) if t.any() or m.any()]
    scores = [2.0 * (t & m).sum() / (t.sum() + m.sum()) for t, m in pairs]
    return float(np.mean(scores)) if scores else float("nan")


def own_masks(logits: np.ndarray, item_boxes: Sequence[BoxPrompt], classes: Sequence[int],
              num_classes: int) -> np.ndarray:
    """(num_classes, H, W): per class, the union of its boxes' own masks (logit > 0), each cut at its box's edge."""
    masks = np.zeros((num_classes, *logits.shape[1:]), dtype=bool)
    for k, (b, c) in enumerate(zip(item_boxes, classes, strict=True)):
        inside = np.zeros(logits.shape[1:], dtype=bool)
        inside[b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = True
        masks[c] |= (logits[k] > 0) & inside
    return masks


@dataclass
class Unmerged:
    """Per slice: the true label map, each class's own mask before the merge, and the merged label map."""

    truth: list[np.ndarray]
    own: list[np.ndarray]
    merged: list[np.ndarray]

    def class_row(self, c: int) -> list[float]:
        """Dice of class ``c``: own mask against the class, against the class with holes filled; merged label."""
        true = [t == c for t in self.truth]
        filled = [ndimage.binary_fill_holes(t) for t in true]
        own = [o[c] for o in self.own]
        return [mask_dice(true, own), mask_dice(filled, own), mask_dice(true, [m == c for m in self.merged])]

    def shares(self, c: int, num_classes: int) -> tuple[int, list[float]]:
        """Pixels of true class ``c`` pooled over the slices, and the share the merged label gives each class."""
        counts = np.zeros(num_classes, dtype=np.int64)
        for t, m in zip(self.truth, self.merged, strict=True):
            counts += np.bincount(m[t == c].ravel(), minlength=num_classes)[:num_classes]
        total = int(counts.sum())
        return total, [float(n) / total if total else float("nan") for n in counts]


def unmerged(b: Budgeted, chosen: Sequence[SliceItem], num_classes: int) -> Unmerged:
    """LiteMedSAM run again on ``chosen`` (with a progress bar), keeping each class's own mask and the merge."""
    from tqdm import tqdm

    from frugalseg.pseudolabels import litemedsam

    model = litemedsam.LiteMedSAM()
    out = Unmerged([], [], [])
    for it in tqdm(chosen, desc=f"{b.name}: masks before the merge", unit="slice"):
        boxes, classes = item_prompts(b.ann.items[it.item_id], it.shape, None)
        logits = model.box_logits(it.image, boxes)
        out.truth.append(np.asarray(it.label))
        out.own.append(own_masks(logits, boxes, classes, num_classes))
        out.merged.append(resolve_boxes(logits, boxes, classes))
    return out


def unmerged_tables(found: Unmerged, names: Sequence[str]) -> list[str]:
    """Dice per class before and after the merge, and where each true class's pixels go in the merged label."""
    lines = ["| class | own mask vs the class | own mask vs the class, holes filled | merged label vs the class |",
             "|---|---|---|---|"]
    for c, name in enumerate(names, start=1):
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in found.class_row(c)) + " |")
    labels = ["background", *names]
    lines += ["", "| true class | pixels | " + " | ".join(f"→ {n}" for n in labels) + " |",
              "|---" * (len(labels) + 2) + "|"]
    for c, name in enumerate(names, start=1):
        total, shares = found.shares(c, len(labels))
        lines.append(f"| {name} | {total:,} | " + " | ".join(f"{v:.1%}" for v in shares) + " |")
    return lines


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
    parser.add_argument("--unmerged", action="store_true",
                        help="each class's own mask before the merge (runs the model; block medsam_unmerged)")
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
    if args.unmerged:
        return write_unmerged(args, budgets, names, source.num_classes)
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


def write_unmerged(args: argparse.Namespace, budgets: Sequence[Budgeted], names: Sequence[str],
                   num_classes: int) -> int:
    """``--unmerged``: per budget, the tables of :func:`unmerged_tables`, printed and into ``--page``."""
    parts, t0 = [], time.perf_counter()
    for b in budgets:
        chosen = b.chosen(args.sample, args.seed)
        parts += [f"`{b.name}`, {len(chosen)} of its {len(b.boxed)} boxed training slices:", "",
                  *unmerged_tables(unmerged(b, chosen, num_classes), names), ""]
    command = (f"python scripts/medsam_quality.py --data DATA --budget {' '.join(args.budget)} --sample {args.sample} "
               f"--seed {args.seed} --threads {args.threads} --unmerged")
    intro = (f"Each class's own LiteMedSAM mask before the merge, and the merged label (seeded subset, seed "
             f"{args.seed}; simulation seed 0). Command: `{command}`; {utc_now()}, {machine_description('cpu')}, "
             f"load average {os.getloadavg()[0]:.1f}, {time.perf_counter() - t0:.0f} s.")
    text = "\n".join([intro, "", *parts]).rstrip() + "\n"
    print(text)
    if args.page:
        replace_marked_block(args.page, "medsam_unmerged", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
