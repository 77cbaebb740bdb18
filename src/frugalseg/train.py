"""Train a configured run: prepare the run folder, load the data, build the method by name, run the loop.

This is where a config's ``method.name`` becomes a built method (the loop in :mod:`frugalseg.engine`
never looks a name up) and where the run folder is checked before anything is written. ``frugalseg
train``, the demo, the bench and the benchmarks all train through :func:`train_run`: it is the library's
entry point for training, so the bench, a client of the library, never goes through the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from frugalseg.config import RunConfig
from frugalseg.engine.run_data import RunData, load_run_data
from frugalseg.engine.trainer import Trainer, TrainResult, seed_everything
from frugalseg.errors import CheckpointError
from frugalseg.methods import build_method
from frugalseg.preflight import check_run_inputs
from frugalseg.resume_check import check_resume
from frugalseg.run_folder import RunFolder, RunMode
from frugalseg.training import Method
from frugalseg.training.checkpoint import load_checkpoint

__all__ = ["default_run_dir", "prepare_run_dir", "train_run"]


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into an existing run unless asked to resume it or overwrite it (checked before any work).

    Checks only: :class:`~frugalseg.run_folder.RunFolder` replaces an old run once the new one has started.
    """
    RunFolder(run_dir, _mode(resume, overwrite)).check()


def _mode(resume: bool, overwrite: bool) -> RunMode:
    return RunMode.RESUME if resume else RunMode.OVERWRITE if overwrite else RunMode.NEW


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    run_data: RunData | None = None,
    stop_at: int | None = None,
    resume_with_changes: bool = False,
) -> TrainResult:
    """Train one configured run into ``run_dir``; every input is checked before the folder changes.

    Under ``torchrun`` every rank calls this; rank 0 alone checks and holds the folder. Each rank seeds its
    generators with ``train.seed + rank`` before the method is built, so that the initial weights and
    every random draw of the loop follow from the seed.

    Order (docs/reliability.md): the folder's state (exists, locked, resumable) and, on resume, the
    command line against ``config.json``; then the data and annotations; then what the method needs of
    them; then the method itself and, on resume, the checkpoint loaded into it. Only then does the loop
    open the folder (lock, ``--overwrite`` swap), and any failure before the first checkpoint undoes that.

    Args:
        config: the validated run config.
        run_dir: output folder (config, annotations, logs, checkpoints).
        resume: continue from ``run_dir/checkpoints/last.pt`` (refused if the config changes the training).
        overwrite: replace an existing run folder (once the new run has written its first checkpoint).
        progress: show a progress bar (rank 0).
        run_data: pre-loaded data (tests, the demo and the bench reuse it across runs).
        stop_at: stop after this many iterations (saving ``last.pt``) as if the run had been killed there.
        resume_with_changes: resume although the config changes the training; the changes go to ``run.log``.
    """
    run_dir = Path(run_dir)
    resume = resume or resume_with_changes
    rank = int(os.environ.get("RANK", "0"))
    folder = RunFolder(run_dir, _mode(resume, overwrite))
    changes: dict[str, tuple[Any, Any]] = {}
    if rank == 0:
        folder.check()
        if resume:
            changes = check_resume(run_dir, config.to_dict(), resume_with_changes)
    data = run_data or load_run_data(config)
    check_run_inputs(config, data)
    seed_everything(config.train.seed + rank)
    method = build_method(config, data.source.in_channels, data.source.num_classes)
    if resume:
        ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        _fits(method, ckpt, run_dir)
        folder.accept_changes(changes, int(ckpt["iteration"]))
    trainer = Trainer(config, method, data, run_dir, resume=resume, progress=progress, stop_at=stop_at,
                      folder=folder if rank == 0 else None)
    return trainer.run()


def _fits(method: Method[Any], ckpt: dict[str, Any], run_dir: Path) -> None:
    """The checkpoint to resume loads into the built method (checked before the folder changes)."""
    try:
        method.load_state_dict(ckpt["method"])
    except (RuntimeError, KeyError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{run_dir / 'checkpoints' / 'last.pt'}: does not fit the configured method "
                              f"({first})") from None


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<config name>-<method>-s<seed>`` under the current folder."""
    base = os.environ.get("FRUGALSEG_RUNS", "runs")
    return Path(base) / f"{config.name or config.method.name}-s{config.train.seed}"
