"""Checkpoints: one typed training state, written atomically, read without executing pickles.

A checkpoint holds a :class:`TrainingState`: everything needed to resume (method state: networks,
teachers and buffers; optimiser; scheduler; grad scaler; RNG states; iteration; best score) plus the
run's config and data shape, so ``frugalseg eval`` and ``predict`` need nothing else. The trainer
writes one, ``--resume`` and ``load_trained_model`` (which rebuilds the method) read one, and the
bench's records read the method state of one: all through this record, so the file's keys are
written in one place.

Writing goes to a temporary file in the same folder followed by ``os.replace``, so a run killed
mid-write never leaves a truncated checkpoint behind. Reading uses ``torch.load(weights_only=True)``:
a file carrying arbitrary pickled objects is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from frugalseg.errors import CheckpointError
from frugalseg.files import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "TrainingState", "load_checkpoint", "load_training_state", "save_checkpoint"]

CHECKPOINT_FORMAT = "frugalseg.checkpoint/1"


@dataclass
class TrainingState:
    """What one checkpoint holds (the file is this record as a dict, plus ``format``).

    Attributes:
        config: the run's config (``RunConfig.to_dict()``).
        num_classes: output classes including background.
        method: the method's whole ``state_dict`` (networks, teachers, buffers).
        iteration: iterations done.
        in_channels: the networks' input channels (checkpoints written before it was recorded: 1).
        class_names: foreground class names by index (as strings, as JSON keys).
        optimizer, scheduler, scaler: their ``state_dict`` s (empty in a checkpoint not meant for resuming).
        rng: every rank's CPU generator state, in rank order.
        best_dice, best_iteration: the best validation mean Dice so far and where (-1: none yet).
        train_seconds: seconds of training so far, all sessions of a resumed run together.
    """

    config: dict[str, Any]
    num_classes: int
    method: dict[str, torch.Tensor]
    iteration: int = 0
    in_channels: int = 1
    class_names: dict[str, str] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    rng: list[torch.Tensor] = field(default_factory=list)
    best_dice: float = -1.0
    best_iteration: int = -1
    train_seconds: float = 0.0  # training time so far, over every session of a resumed run

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk (the RNG states under ``rng.torch``, as the format has always had them)."""
        payload = {f.name: getattr(self, f.name) for f in fields(self)}
        payload["rng"] = {"torch": self.rng}
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | Path = "<checkpoint>") -> TrainingState:
        """The record of a loaded checkpoint; :class:`CheckpointError` naming ``path`` when a key is missing."""
        missing = [k for k in ("config", "num_classes", "method") if k not in payload]
        if missing:
            raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        values["rng"] = list((payload.get("rng") or {}).get("torch", []))
        return cls(**values)


def save_checkpoint(state: TrainingState | dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename in the same folder)."""
    path = Path(path)
    payload = state.to_payload() if isinstance(state, TrainingState) else state
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
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # an empty file raises an empty EOFError
        size = path.stat().st_size
        what = "an empty file (0 bytes)" if size == 0 else "not a safe frugalseg checkpoint"
        raise CheckpointError(f"{path}: {what} (refused by weights-only loading: {first})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a frugalseg checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    return payload


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> TrainingState:
    """Read a checkpoint safely as a :class:`TrainingState` (see :func:`load_checkpoint`)."""
    return TrainingState.from_payload(load_checkpoint(path, map_location), path)
