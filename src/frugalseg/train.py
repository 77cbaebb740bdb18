"""Train a configured run: prepare the run folder, load the data, build the method by name, run the loop.

This is where a config's ``method.name`` becomes a built method (the loop in :mod:`frugalseg.engine`
never looks a name up) and where the run folder is checked before anything is written. ``frugalseg
train``, the demo, the bench and the benchmarks all train through :func:`train_run`: it is the library's
entry point for training, so the bench, a client of the library, never goes through the command line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from frugalseg.config import RunConfig
from frugalseg.engine.run_data import RunData, load_run_data
from frugalseg.engine.trainer import RUN_MARKER, Trainer, TrainResult, seed_everything
from frugalseg.errors import CheckpointError, OutputExistsError
from frugalseg.methods import build_method

__all__ = ["default_run_dir", "prepare_run_dir", "train_run"]


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into an existing run unless asked to resume it or overwrite it (checked before any work)."""
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(run_dir, "pass --resume to continue that run or --overwrite to replace it")
        if not (run_dir / RUN_MARKER).is_file():
            raise OutputExistsError(run_dir, "it is not a frugalseg run folder; refusing to delete it")
        shutil.rmtree(run_dir)


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    run_data: RunData | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train one configured run into ``run_dir``.

    Under ``torchrun`` every rank calls this; rank 0 alone prepares the folder. Each rank seeds its
    generators with ``train.seed + rank`` before the method is built, so that the initial weights and
    every random draw of the loop follow from the seed.

    Args:
        config: the validated run config.
        run_dir: output folder (config, annotations, logs, checkpoints).
        resume: continue from ``run_dir/checkpoints/last.pt``.
        overwrite: replace an existing run folder.
        progress: show a progress bar (rank 0).
        run_data: pre-loaded data (tests, the demo and the bench reuse it across runs).
        stop_at: stop after this many iterations (saving ``last.pt``) as if the run had been killed there.
    """
    run_dir = Path(run_dir)
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        prepare_run_dir(run_dir, resume, overwrite)
    data = run_data or load_run_data(config)
    seed_everything(config.train.seed + rank)
    method = build_method(config, data.source.in_channels, data.source.num_classes)
    return Trainer(config, method, data, run_dir, resume=resume, progress=progress, stop_at=stop_at).run()


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<config name>-<method>-s<seed>`` under the current folder."""
    base = os.environ.get("FRUGALSEG_RUNS", "runs")
    return Path(base) / f"{config.name or config.method.name}-s{config.train.seed}"
