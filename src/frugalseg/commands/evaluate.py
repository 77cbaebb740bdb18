"""``frugalseg eval``: score a checkpoint on volumes (:func:`frugalseg.evaluation.checkpoint.evaluate_checkpoint`)."""

from __future__ import annotations

import json
from pathlib import Path

from frugalseg.evaluation.checkpoint import evaluate_checkpoint

__all__ = ["run_eval"]


def run_eval(checkpoint: Path, data: Path, out: Path, case_list: Path | None = None, overwrite: bool = False,
             device: str | None = None, network: str | None = None) -> str:
    """Evaluate ``checkpoint`` on ``data`` into ``out``; the text the command prints (overall scores, files)."""
    res = evaluate_checkpoint(checkpoint, data, out, case_list=case_list, overwrite=overwrite, device=device,
                              network=network)
    return f"{json.dumps(res.summary['overall'], indent=2)}\nwrote {res.csv_path} and {res.json_path}"
