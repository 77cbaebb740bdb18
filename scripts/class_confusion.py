"""Where each true class's voxels go: the confusion of the bench's runs on the validation volumes.

A mean Dice says how much a model misses, not what it predicts instead. The LiteMedSAM rows lose the
myocardium and much of the LV, and the pseudo-label quality table says why their labels do
(``docs/methods/medsam_boxes.md``: the myocardium box's mask is the blood pool, and it wins the merge over the
LV box's). Whether a model trained on those labels learned that very error (the cavity called myocardium, the
ring called background) or fails in its own way is read from the confusion of its predictions.

For each recorded seed of each row the script

- unless its counts are kept already, finds the run folder its record names and checks that the folder
  still holds that run (same ``config.json``); a run folder that is gone or holds another run stops the script;
- predicts every validation volume with ``checkpoints/last.pt``'s own network exactly as the bench's
  evaluation does (``frugalseg eval``: the config's patch size, batch size and precision), and counts
  (true class, predicted class) voxels over all volumes;
- checks that the mean Dice of these predictions is the record's ``last.pt`` score, so the table describes
  the very predictions the bench scored;
- keeps the counts beside the records, committed with them (``docs/results/evidence/class_confusion/``,
  ``frugalseg.bench.run_evidence``): a later call, on any machine, reads them instead of the run folder;

then writes the ``<!-- class_confusion -->`` block of the page: per row and true class, the share of that
class's voxels predicted as each class (pooled over the volumes of a seed), mean ± std over seeds.

    python scripts/class_confusion.py --data ../shared/data/ACDC --page docs/methods/medsam_boxes.md \\
        --rows supervised7 dii_dcr medsam_boxes [--records docs/results/runs] [--threads 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalseg.bench.records import RunRecord
from frugalseg.bench.run_evidence import evidence_parser, measured_runs, write_evidence_block
from frugalseg.bench.tables import aggregate, metric_value

BLOCK = "class_confusion"
AGREEMENT = 1e-4
"""How far the predictions' mean Dice may be from the record's ``last.pt`` score (the same evaluation, again)."""


@dataclass(frozen=True)
class Confusion:
    """One seed of one row: voxel counts ``counts[true, predicted]`` over the validation volumes."""

    row: str
    seed: int
    classes: list[str]
    counts: np.ndarray

    def shares(self) -> np.ndarray:
        """Each true class's voxels split by predicted class (rows sum to 1; NaN for a class never present)."""
        totals = self.counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.counts / totals


def confusion_counts(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """``counts[t, p]``: voxels whose reference is ``t`` and prediction ``p`` (``num_classes`` x ``num_classes``)."""
    if pred.shape != label.shape:
        raise ValueError(f"prediction {pred.shape} and reference {label.shape} differ in shape")
    flat = label.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def predict_and_count(checkpoint: Path, data: str) -> dict[str, Any]:
    """Confusion counts and mean Dice of ``checkpoint``'s predictions on the validation volumes of ``data``."""
    from frugalseg.data.sources import open_source
    from frugalseg.evaluation.inference import predict_volume
    from frugalseg.evaluation.metrics import compute_volume_metrics, summarise
    from frugalseg.methods.restore import load_trained_model

    device = torch.device("cpu")
    model = load_trained_model(checkpoint, device, None)
    source = open_source(data)
    cfg = model.config
    counts = np.zeros((source.num_classes, source.num_classes), dtype=np.int64)
    results = []
    for case_id in source.case_ids("val"):
        case = source.load_case(case_id)
        if case.label is None:
            raise SystemExit(f"{data}: validation volume {case_id} has no reference labels to count against")
        pred = predict_volume(model.network, case.image, patch_size=cfg.data.patch_size,
                              batch_size=cfg.train.val_batch_size, amp=cfg.train.precision != "off", device=device)
        counts += confusion_counts(pred, case.label, source.num_classes)
        results.append(compute_volume_metrics(pred, case.label, source.num_classes, spacing=case.spacing,
                                              case_id=case.case_id))
    dice = metric_value(summarise(results, source.classes), "dice")
    names = ["background", *(source.classes[k] for k in sorted(source.classes))]
    return {"classes": names, "counts": counts.tolist(), "dice": dice}


def measure(records: Path, rows: Sequence[str], data: str) -> list[Confusion]:
    """The confusion of every recorded seed of ``rows``; stops if a seed's predictions disagree with its record."""

    def count(record: RunRecord, run: Path) -> dict[str, Any]:
        made = predict_and_count(run / "checkpoints" / "last.pt", data)
        recorded = metric_value(record.summaries["last"], "dice")
        if abs(made["dice"] - recorded) > AGREEMENT:
            raise SystemExit(f"{run}: its predictions score {made['dice']:.4f}, its record {recorded:.4f}")
        return made

    found = []
    for row, record, made in measured_runs(records, rows, BLOCK, count):
        found.append(Confusion(row, record.seed, made["classes"], np.asarray(made["counts"], dtype=np.int64)))
        print(f"{row} s{record.seed}: counted", flush=True)
    return found


def block(found: Sequence[Confusion]) -> str:
    """Markdown: per row and true class, the share of its voxels given to each class, mean ± std over seeds."""
    classes = found[0].classes
    lines = ["ACDC validation volumes, `last.pt`; share of each true class's voxels predicted as each class "
             "(pooled over the volumes of a seed), mean ± sample std over seeds.", "",
             "| row | seeds | true class | " + " | ".join(f"→ {c}" for c in classes) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in classes) + " |"]
    for row in dict.fromkeys(c.row for c in found):
        mine = [c for c in found if c.row == row]
        if any(c.classes != classes for c in mine):
            raise SystemExit(f"{row}: its runs have other classes than {classes}")
        shares = np.stack([c.shares() for c in mine])
        for t, name in enumerate(classes):
            cells = [str(aggregate(list(shares[:, t, p]))) for p in range(len(classes))]
            lines.append(f"| {row} | {len(mine)} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = evidence_parser(__doc__.split("\n\n")[0], BLOCK).parse_args(argv)
    torch.set_num_threads(args.threads)
    found = measure(args.records, args.rows, args.data)
    if not found:
        raise SystemExit(f"{args.records}: no records of {', '.join(args.rows)}")
    write_evidence_block("class_confusion.py", BLOCK, args, block(found))


if __name__ == "__main__":
    main()
