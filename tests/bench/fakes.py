"""Finished runs made by hand: the files a trained and scored run leaves, with chosen numbers, no training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frugalseg.evaluation.reports import CSV_COLUMNS

CLASSES = ("RV", "Myo", "LV")


def fake_summary(dice: float, hd95: float = 5.0, asd: float = 1.0, spread: float = 0.0) -> dict[str, Any]:
    """An eval summary whose class c (0, 1, 2) scores ``dice + (c - 1) * spread`` (so the class mean is ``dice``)."""
    classes = {}
    for k, name in enumerate(CLASSES):
        off = (k - 1) * spread
        classes[name] = {"dice": {"mean": dice + off, "std": 0.01}, "jaccard": {"mean": 0.5, "std": 0.0},
                         "hd95": {"mean": hd95 + off, "std": 0.0}, "asd": {"mean": asd + off, "std": 0.0},
                         "assd": {"mean": asd, "std": 0.0}}
    overall = {"dice": {"mean": dice, "std": 0.02}, "jaccard": {"mean": 0.5, "std": 0.0},
               "hd95": {"mean": hd95, "std": 0.0}, "asd": {"mean": asd, "std": 0.0}, "assd": {"mean": asd, "std": 0.0}}
    return {"n_volumes": 2, "units": "voxel", "metrics": ["dice", "jaccard", "hd95", "asd", "assd"],
            "classes": classes, "overall": overall, "empty": {}}


def fake_run(runs: Path, label: str, seed: int, dice: float, train_seconds: float = 600.0,
             config: dict[str, Any] | None = None, annotations: dict[str, Any] | None = None,
             best_dice: float | None = None) -> Path:
    """A finished, scored run folder ``<runs>/<label>-s<seed>`` (summary.json, eval_best/, eval_last/)."""
    run = runs / f"{label}-s{seed}"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"iterations": 3000, "best_dice": dice, "best_iteration": 3000,
                                                  "train_seconds": train_seconds, "world_size": 1}))
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    if annotations is not None:
        (run / "annotations.json").write_text(json.dumps(annotations))
    for which, value in (("best", dice if best_dice is None else best_dice), ("last", dice)):
        out = run / f"eval_{which}"
        out.mkdir()
        (out / "summary.json").write_text(json.dumps(fake_summary(value)))
        header = ",".join(CSV_COLUMNS)
        rows = [f"case{v},{k + 1},{name},{value},0.5,5.0,1.0,1.0,False,False,voxel"
                for v in range(2) for k, name in enumerate(CLASSES)]
        (out / "per_volume.csv").write_text("\n".join([header, *rows]) + "\n")
    return run
