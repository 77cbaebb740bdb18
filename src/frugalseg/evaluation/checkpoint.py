"""Score a trained checkpoint on the volumes of a data folder, per volume and per class, into a CSV and a JSON summary.

The one evaluation every client shares: ``frugalseg eval`` (:mod:`frugalseg.commands.evaluate`), the bench's
runner (both checkpoints of every run), and the demo. It lives here, below the commands, so that the bench
is a client of the library and never of the command line.

It is the one module of ``evaluation/`` that reaches above it: rebuilding a trained network from a checkpoint
needs the method registry (:func:`frugalseg.methods.restore.load_trained_model`) and a case list is read as
the trainer reads one (:mod:`frugalseg.engine.run_data`). Both are imported when it is called, so importing
the rest of ``evaluation/`` (inference, metrics, reports) never loads the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from frugalseg.data.sources import open_source
from frugalseg.errors import CheckpointError, DataError, OutputExistsError
from frugalseg.preflight import check_device
from frugalseg.run_folder import check_output_folder

__all__ = ["EvalOutput", "evaluate_checkpoint"]


@dataclass
class EvalOutput:
    """What :func:`evaluate_checkpoint` computed and where it wrote it."""

    summary: dict[str, Any]
    csv_path: Path
    json_path: Path


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    case_list: str | Path | None = None,
    split: str = "val",
    overwrite: bool = False,
    device: str | None = None,
    network: str | None = None,
) -> EvalOutput:
    """Evaluate ``checkpoint`` on the cases of ``data`` (``--list`` or the source's ``split``); write reports.

    ``network`` evaluates another of the checkpoint's networks than the method's own choice (a mean
    teacher's ``student``); the summary names it. Everything that can fail on bad input (missing folder,
    empty list, a checkpoint for another class count, an unknown network) fails before ``out`` is written.
    """
    from frugalseg.engine.run_data import check_ids, read_case_list
    from frugalseg.evaluation.inference import evaluate_cases
    from frugalseg.evaluation.metrics import summarise
    from frugalseg.evaluation.reports import write_reports
    from frugalseg.methods.restore import load_trained_model

    out = check_output_folder(out)
    csv_path, json_path = out / "per_volume.csv", out / "summary.json"
    for p in (csv_path, json_path):
        if p.exists() and not overwrite:
            raise OutputExistsError(p)
    dev = check_device(device, "--device") or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_trained_model(checkpoint, dev, network)
    source = open_source(data)
    if source.num_classes != model.num_classes:
        raise CheckpointError(
            f"{checkpoint}: trained for {model.num_classes} classes, but {source.root} has {source.num_classes}"
        )
    if case_list is not None:
        ids = check_ids(source, read_case_list(case_list), case_list)
    else:
        ids = source.case_ids(split)
    if not ids:
        raise DataError(source.root, f"no cases in split {split!r}: give --list")
    cases = [source.load_case(i) for i in ids]
    missing = [c.case_id for c in cases if c.label is None]
    if missing:
        raise DataError(source.root, f"cases without a reference mask cannot be scored: {', '.join(missing[:5])}")
    results = evaluate_cases(model.network, cases, patch_size=model.config.data.patch_size,
                             batch_size=model.config.train.val_batch_size, amp=model.config.train.precision != "off",
                             device=dev)
    summary = summarise(results, source.classes)
    summary["checkpoint"] = str(checkpoint)
    summary["data"] = str(data)
    if network is not None:
        summary["network"] = network
    write_reports(results, summary, csv_path, json_path, source.classes, overwrite=overwrite)
    return EvalOutput(summary, csv_path, json_path)
