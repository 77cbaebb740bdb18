"""Does DII weigh good weak labels more? Learned γ per weak instance against the instance's true quality.

Reads a finished ``dii_dcr`` run (its config, its ``annotations.json`` and the γ table of a checkpoint)
or its committed record (``frugalseg.bench.records``: the config and last.pt's γ table; the annotations
are simulated again from the config, as training did), rasterises every weak instance on its stored grid
exactly as training did, and scores it against the real mask (ACDC's boxes were simulated from masks, so
the masks are there):

- ``iou``: IoU of the instance's weak region (the pixels the box mask gives its class) with the real
  mask of that class in the slice (image granularity: mean IoU over the classes of the weak or the real map);
- ``precision``: the share of the weak region whose real class is the weak one (image: pixel accuracy).

Writes ``dii_instances.csv`` (one row per instance) and ``dii_quality.json`` into each run folder (a
record is left as it is; ``--out DIR`` puts them in ``DIR/<name>/`` for both) and prints a table of the
Spearman rank correlation of γ with both, over the instances γ was updated for, overall and within each
class (the class alone sets much of a box's quality). When the annotations record corrupted boxes
(``budget masks7_boxes_noisy``), it also gives the mean γ of corrupted and of clean instances and the
AUROC of γ for telling them apart (the probability that a clean instance has a higher γ than a corrupted
one, ties counting half: 0.5 is chance), overall and within each weak class, since corruption moves
boxes between classes and γ differs by class.
``--doc PAGE --block NAME`` puts the table into a Markdown page::

    python scripts/dii_instance_quality.py --data ../shared/data/ACDC \\
        --run docs/results/runs/dii_dcr_3k-s0 --run docs/results/runs/dii_dcr_3k-s1 \\
        --doc docs/methods/dii_dcr.md --block instance_quality
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu, spearmanr

from frugalseg.bench.records import has_record, read_record
from frugalseg.config import RunConfig
from frugalseg.data.annotations import AnnotationFile, Item, load_annotations
from frugalseg.data.candidates import rasterise
from frugalseg.data.types import SliceItem
from frugalseg.engine.run_data import load_run_data
from frugalseg.files import replace_marked_block
from frugalseg.methods.dii_dcr import DIIDCROptions, Granularity
from frugalseg.training.checkpoint import load_training_state


@dataclass
class InstanceRow:
    """One weak instance: where it is, what DII learnt for it, and how good it really is."""

    item_id: str
    index: int
    slot: int
    weak_class: int
    pixels: int
    gamma: float
    updates: int
    iou: float
    precision: float
    corrupted: bool


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.logical_or(a, b).sum())
    return float(np.logical_and(a, b).sum()) / union if union else 1.0


def instances_of(item: SliceItem, annotation: Item, num_classes: int, granularity: Granularity,
                 corrupted: set[int]) -> Iterator[tuple[int, int, np.ndarray, float, float, bool]]:
    """``(slot, weak class, region, iou, precision, corrupted)`` of each weak instance of one box item.

    The slots are the method's (:func:`frugalseg.methods.dii_dcr.instance_slots`) on the unaugmented grid;
    an instance without a pixel (a box hidden under smaller ones) never took part in training and is skipped.
    """
    con = rasterise(item, annotation, num_classes)
    truth = np.asarray(item.label)
    inside = con.box_index >= 0
    if granularity == Granularity.BOX:
        for k, box in enumerate(annotation.boxes):
            region = con.box_index == k
            if region.any():
                real = truth == box.class_
                yield (k, box.class_, region, _iou(region, real), float(real[region].mean()), k in corrupted)
    elif granularity == Granularity.CLASS:
        for c in sorted(int(v) for v in np.unique(con.box_label[inside])):
            region = inside & (con.box_label == c)
            real = truth == c
            bad = any(annotation.boxes[k].class_ == c for k in corrupted)
            yield c, c, region, _iou(region, real), float(real[region].mean()), bad
    else:
        weak = con.box_label
        classes = sorted({int(v) for v in np.unique(weak[weak > 0])} | {int(v) for v in np.unique(truth[truth > 0])})
        iou = statistics.mean(_iou(weak == c, truth == c) for c in classes) if classes else 1.0
        labelled = weak >= 0
        yield 0, 0, labelled, iou, float((weak[labelled] == truth[labelled]).mean()), bool(corrupted)


def _trained_gamma(run: Path, checkpoint: str) -> tuple[np.ndarray, np.ndarray, int]:
    """γ and update counts per (item, slot) and the iteration they are from: a checkpoint's or a record's."""
    if has_record(run):
        state = read_record(run).method_state()
        if state is None:
            raise SystemExit(f"{run}: the record keeps no method state (recorded before DII's γ was recorded)")
        if state.checkpoint != checkpoint:
            raise SystemExit(f"{run}: the record keeps the γ of {state.checkpoint}.pt, not of {checkpoint}.pt")
        return state.arrays["indicators.gamma"], state.arrays["indicators.steps"], state.iteration
    saved = load_training_state(run / "checkpoints" / f"{checkpoint}.pt")
    state = saved.method
    return state["indicators.gamma"].numpy(), state["indicators.steps"].numpy(), saved.iteration


def instance_rows(run: Path, data_root: Path | None, checkpoint: str = "last") -> tuple[list[InstanceRow], dict]:
    """Every weak instance of the run (folder or record) with its γ and quality, and the facts the summary needs."""
    config = RunConfig.model_validate(json.loads((run / "config.json").read_text()))
    if config.method.name != "dii_dcr":
        raise SystemExit(f"{run}: method is {config.method.name!r}, not dii_dcr")
    if data_root is not None:
        config.data.root = str(data_root)
    options = DIIDCROptions.model_validate(config.method.options)
    data = load_run_data(config, with_val=False)
    annotations: AnnotationFile | None = data.annotations
    if (run / "annotations.json").is_file():  # the exact file training read
        grids = {it.item_id: it.shape for it in data.train_items}
        annotations = load_annotations(run / "annotations.json", grids=grids)
    if annotations is None:
        raise SystemExit(f"{run}: the run has no annotations, so no weak instances")
    gamma, steps, iteration = _trained_gamma(run, checkpoint)
    corrupted_boxes: dict[str, list[int]] = annotations.provenance.get("corrupted_boxes", {})
    rows = []
    for index, item in enumerate(data.train_items):
        ann = annotations.items.get(item.item_id)
        if ann is None or ann.mask or not ann.boxes:
            continue
        bad = set(corrupted_boxes.get(item.item_id, []))
        for slot, c, region, iou, precision, corrupted in instances_of(
                item, ann, data.source.num_classes, options.instance, bad):
            known = index < gamma.shape[0] and slot < gamma.shape[1]
            rows.append(InstanceRow(
                item.item_id, index, slot, c, int(region.sum()),
                float(gamma[index, slot]) if known else options.gamma_init,
                int(steps[index, slot]) if known else 0, iou, precision, corrupted))
    facts = {"run": str(run), "checkpoint": checkpoint, "iteration": iteration,
             "instance": str(options.instance), "dii": options.dii, "gamma_init": options.gamma_init,
             "noisy": "corrupted_boxes" in annotations.provenance}
    return rows, facts


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = float(spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


def auroc(higher: list[float], lower: list[float]) -> float | None:
    """P(an item of ``higher`` exceeds one of ``lower``), ties counting half; ``None`` if a group is empty.

    The Mann-Whitney U of ``higher`` divided by the number of pairs, i.e. the area under the ROC curve of
    the score for telling the two groups apart.
    """
    if not higher or not lower:
        return None
    return float(mannwhitneyu(higher, lower).statistic) / (len(higher) * len(lower))


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def _class_means(rows: list[InstanceRow]) -> dict[str, Any]:
    """Count, mean IoU and mean γ of one weak class's instances, clean and corrupted apart."""
    clean = [r for r in rows if not r.corrupted]
    bad = [r for r in rows if r.corrupted]
    return {"instances": len(rows), "iou_mean": _mean([r.iou for r in rows]),
            "gamma_mean": _mean([r.gamma for r in rows]),
            "clean": {"instances": len(clean), "iou_mean": _mean([r.iou for r in clean]),
                      "gamma_mean": _mean([r.gamma for r in clean])},
            "corrupted": {"instances": len(bad), "iou_mean": _mean([r.iou for r in bad]),
                          "gamma_mean": _mean([r.gamma for r in bad])}}


def summarise(rows: list[InstanceRow], facts: dict[str, Any]) -> dict[str, Any]:
    """Spearman of γ with IoU and precision (overall, per class), per-class means, and for noisy runs the
    mean γ of corrupted vs clean instances with the AUROC that tells them apart (overall, per class)."""
    updated = [r for r in rows if r.updates > 0]
    out: dict[str, Any] = {**facts, "instances": len(rows), "updated": len(updated)}
    if updated:
        g = [r.gamma for r in updated]
        out["gamma_mean"], out["gamma_std"] = statistics.mean(g), statistics.pstdev(g)
        out["spearman_iou"] = _spearman(g, [r.iou for r in updated])
        out["spearman_precision"] = _spearman(g, [r.precision for r in updated])
        out["spearman_iou_per_class"] = {
            str(c): _spearman([r.gamma for r in updated if r.weak_class == c],
                              [r.iou for r in updated if r.weak_class == c])
            for c in sorted({r.weak_class for r in updated})
        }
    out["per_class"] = {str(c): _class_means([r for r in updated if r.weak_class == c])
                        for c in sorted({r.weak_class for r in updated})}
    if facts.get("noisy"):
        for name, flag in (("corrupted", True), ("clean", False)):
            group = [r.gamma for r in updated if r.corrupted == flag]
            out[f"{name}_instances"] = len(group)
            out[f"{name}_gamma_mean"] = _mean(group)

        def split(within: list[InstanceRow]) -> float | None:
            return auroc([r.gamma for r in within if not r.corrupted], [r.gamma for r in within if r.corrupted])

        out["auroc_clean_over_corrupted"] = split(updated)
        out["auroc_clean_over_corrupted_per_class"] = {
            str(c): split([r for r in updated if r.weak_class == c]) for c in sorted({r.weak_class for r in updated})
        }
    return out


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(summaries: list[dict[str, Any]]) -> str:
    """One table row per run: the Spearman correlations and, for noisy runs, γ of corrupted vs clean boxes."""
    classes = sorted({c for s in summaries for c in s.get("spearman_iou_per_class", {})}, key=int)
    head = ["run", "iteration", "instances (updated)", "γ mean ± std", "ρ(γ, IoU)", "ρ(γ, precision)",
            *[f"ρ(γ, IoU) class {c}" for c in classes], "γ corrupted (n)", "γ clean (n)",
            "AUROC clean > corrupted (per class " + "/".join(classes) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        per_class = s.get("spearman_iou_per_class", {})
        cells = [Path(s["run"]).name, str(s["iteration"]), f"{s['instances']} ({s['updated']})",
                 f"{_fmt(s.get('gamma_mean'))} ± {_fmt(s.get('gamma_std'))}", _fmt(s.get("spearman_iou")),
                 _fmt(s.get("spearman_precision")), *[_fmt(per_class.get(c)) for c in classes]]
        for name in ("corrupted", "clean"):
            cells.append(f"{_fmt(s.get(f'{name}_gamma_mean'))} ({s[f'{name}_instances']})"
                         if f"{name}_instances" in s else "–")
        if "auroc_clean_over_corrupted" in s:
            split = s["auroc_clean_over_corrupted_per_class"]
            cells.append(f"{_fmt(s['auroc_clean_over_corrupted'])} ({'/'.join(_fmt(split.get(c)) for c in classes)})")
        else:
            cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def class_markdown(summaries: list[dict[str, Any]]) -> str:
    """One row per run and weak class: how good its boxes are (IoU) and how much DII trusts them (γ)."""
    head = ["run", "class", "instances", "IoU mean", "γ mean", "clean: n / IoU / γ", "corrupted: n / IoU / γ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        for c, m in s.get("per_class", {}).items():
            groups = [f"{g['instances']} / {_fmt(g['iou_mean'])} / {_fmt(g['gamma_mean'])}"
                      if s.get("noisy") and g["instances"] else "–" for g in (m["clean"], m["corrupted"])]
            lines.append("| " + " | ".join([Path(s["run"]).name, c, str(m["instances"]), _fmt(m["iou_mean"]),
                                            _fmt(m["gamma_mean"]), *groups]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, action="append", required=True,
                   help="a finished dii_dcr run folder or its record (repeatable)")
    p.add_argument("--out", type=Path, help="write each run's instance CSV and summary to OUT/<run name>/")
    p.add_argument("--data", type=Path, help="the data folder (default: the run config's data.root)")
    p.add_argument("--checkpoint", default="last", choices=["last", "best"])
    p.add_argument("--doc", type=Path, help="also put the table into this Markdown page, in the block --block")
    p.add_argument("--block", help="name of the <!-- name --> block of --doc to replace")
    args = p.parse_args(argv)
    if (args.doc is None) != (args.block is None):
        p.error("--doc and --block go together")
    summaries = []
    for run in args.run:
        rows, facts = instance_rows(run, args.data, args.checkpoint)
        summary = summarise(rows, facts)
        summaries.append(summary)
        out = args.out / run.name if args.out else (None if has_record(run) else run)
        if out is None:
            continue
        out.mkdir(parents=True, exist_ok=True)
        with (out / "dii_instances.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(InstanceRow.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
        (out / "dii_quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summaries) + "\n\nPer weak class (1 RV, 2 Myo, 3 LV):\n\n" + class_markdown(summaries)
    print(table)
    if args.doc:
        command = " ".join(["python scripts/dii_instance_quality.py", *(sys.argv[1:] if argv is None else argv)])
        body = (f"Written by `scripts/dii_instance_quality.py` ({args.checkpoint}.pt; ρ: Spearman over the "
                f"instances γ was updated for):\n\n```\n{command}\n```\n\n{table}")
        replace_marked_block(args.doc, args.block, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
