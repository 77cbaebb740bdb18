"""Checkpoints: written atomically, read without executing pickles.

A checkpoint holds everything needed to resume (method state: networks, teachers and
buffers; optimiser; scheduler; grad scaler; RNG states; iteration; best score) plus
the run's config, so ``frugalseg eval`` and ``predict`` need nothing else.

Writing goes to a temporary file in the same folder followed by ``os.replace``, so a
run killed mid-write never leaves a truncated checkpoint behind. Reading uses
``torch.load(weights_only=True)``: a file carrying arbitrary pickled objects is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from frugalseg.errors import CheckpointError
from frugalseg.files import atomic_path

CHECKPOINT_FORMAT = "frugalseg.checkpoint/1"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + rename in the same folder)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; :class:`CheckpointError` naming the file if it is missing, unsafe or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises UnpicklingError, RuntimeError, EOFError...)
        raise CheckpointError(
            f"{path}: not a safe frugalseg checkpoint (refused by weights-only loading: {str(exc).splitlines()[0]})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a frugalseg checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    return payload
