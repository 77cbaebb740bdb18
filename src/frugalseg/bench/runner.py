"""Train one row with one seed unless it is finished, then score its checkpoints: the resumable unit of a bench.

Folder layout (the one ``scripts/compare_methods.py`` has always written, so its runs are reused)::

    <runs>/<label>-s<seed>/             a frugalseg run folder (config.json, annotations.json, logs, checkpoints/)
    <runs>/<label>-s<seed>/summary.json  written by the engine when training finished: the "done" marker
    <runs>/<label>-s<seed>/eval_best/    ``frugalseg eval`` of checkpoints/best.pt (per_volume.csv, summary.json)
    <runs>/<label>-s<seed>/eval_last/    the same for checkpoints/last.pt

A run with ``summary.json`` is never trained again; one with ``checkpoints/last.pt`` but no summary (killed)
is resumed; anything else is trained from scratch. Because a folder is found by its label alone, a finished
run is checked against the config the row asks for before it is reused: a folder trained with other settings
(another schedule, another ``--set``) is an error rather than a silently wrong table row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalseg.bench.matrix import Row, row_config
from frugalseg.config import RunConfig
from frugalseg.errors import FrugalsegError

__all__ = [
    "CHECKPOINTS",
    "RunMismatchError",
    "RunRecord",
    "check_run",
    "config_differences",
    "evaluate_run",
    "finished",
    "load_record",
    "run_dir",
    "run_row_seed",
    "train_or_skip",
]

CHECKPOINTS: tuple[str, ...] = ("best", "last")
"""Checkpoints scored for every run: ``last.pt`` (no selection, the protocol) and ``best.pt`` (selected on
the validation volumes that also score it, as SSL4MIS does: optimistic)."""

IGNORED_KEYS: frozenset[str] = frozenset({
    "name", "schedules", "data.num_workers", "train.device", "train.threads", "train.log_every",
})
"""Config keys that do not change what a run learns (or, for ``schedules``, only through keys compared anyway)."""

Log = Callable[[str], None]


class RunMismatchError(FrugalsegError):
    """A finished run folder holds a run of another config than the row asks for."""


@dataclass
class RunRecord:
    """A finished run and its scores."""

    label: str
    seed: int
    run_dir: Path
    train_seconds: float
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per checkpoint name: the ``summary.json`` of its evaluation."""

    def per_volume_csv(self, which: str) -> Path:
        return self.run_dir / f"eval_{which}" / "per_volume.csv"

    @property
    def annotations(self) -> Path:
        return self.run_dir / "annotations.json"


def run_dir(runs: str | Path, label: str, seed: int) -> Path:
    return Path(runs) / f"{label}-s{seed}"


def finished(path: Path) -> bool:
    """Training of the run in ``path`` completed (the engine writes ``summary.json`` last)."""
    return (path / "summary.json").is_file()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name != "method.options":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What differs between a run's ``config.json`` and the config a row asks for, one line per key.

    Keys in :data:`IGNORED_KEYS` and keys only one side has (a config key added after the run was trained)
    are not compared; ``data.root`` is compared as a resolved path.
    """
    a, b = _flatten(stored), _flatten(wanted)
    lines = []
    for key in sorted(set(a) & set(b)):
        if key in IGNORED_KEYS:
            continue
        left, right = a[key], b[key]
        if key == "data.root" and left is not None and right is not None:
            left, right = str(Path(left).expanduser().resolve()), str(Path(right).expanduser().resolve())
        if left != right:
            lines.append(f"{key}: run has {left!r}, row wants {right!r}")
    return lines


def check_run(path: Path, config: RunConfig, strict: bool = True, log: Log = print) -> None:
    """Compare the run in ``path`` (if it has a ``config.json``) with ``config``; see :func:`config_differences`.

    Raises:
        RunMismatchError: they differ and ``strict`` (else a warning is logged).
    """
    stored_path = path / "config.json"
    if not stored_path.is_file():
        return
    try:
        stored = json.loads(stored_path.read_text())
    except (OSError, ValueError) as exc:
        raise RunMismatchError(f"{stored_path}: cannot read the run's config ({exc})") from exc
    diff = config_differences(stored, config.to_dict())
    if not diff:
        return
    message = f"{path} was trained with another config than its row: " + "; ".join(diff)
    if strict:
        raise RunMismatchError(message + ". Use another --runs folder, or delete that run to train it again")
    log(f"warning: {message} (reused anyway)")


def train_or_skip(
    row: Row,
    seed: int,
    data: str | Path,
    runs: str | Path,
    schedule: str = "quick",
    extra: Sequence[str] = (),
    strict: bool = True,
    log: Log = print,
) -> bool:
    """Train ``row`` with ``seed`` into ``<runs>/<label>-s<seed>`` unless finished; resume a killed run.

    Returns:
        whether a training ran now.

    Raises:
        RunMismatchError: the folder holds a run of another config (with ``strict``; else a warning is logged).
    """
    from frugalseg.engine.trainer import Trainer

    path = run_dir(runs, row.label, seed)
    config = row_config(row, data, schedule, seed, extra)
    if finished(path) or (path / "checkpoints" / "last.pt").is_file():
        check_run(path, config, strict, log)
    if finished(path):
        return False
    resume = (path / "checkpoints" / "last.pt").is_file()
    t0 = time.perf_counter()
    Trainer(config, path, resume=resume, overwrite=not resume, progress=False).run()
    log(f"[{row.label} s{seed}] trained in {time.perf_counter() - t0:.0f} s")
    return True


def evaluate_run(path: Path, data: str | Path, which: Sequence[str] = CHECKPOINTS,
                 device: str | None = None) -> dict[str, dict[str, Any]]:
    """Score ``checkpoints/<which>.pt`` of a finished run into ``eval_<which>/`` unless already scored."""
    from frugalseg.commands.evaluate import evaluate_checkpoint

    summaries = {}
    for name in which:
        out = path / f"eval_{name}"
        if not (out / "summary.json").is_file():
            evaluate_checkpoint(path / "checkpoints" / f"{name}.pt", data, out, overwrite=True, device=device)
        summaries[name] = json.loads((out / "summary.json").read_text())
    return summaries


def load_record(label: str, seed: int, runs: str | Path, data: str | Path,
                which: Sequence[str] = CHECKPOINTS, device: str | None = None) -> RunRecord | None:
    """The record of a finished run (scoring it if needed), ``None`` when it has not finished."""
    path = run_dir(runs, label, seed)
    if not finished(path):
        return None
    train_seconds = float(json.loads((path / "summary.json").read_text()).get("train_seconds", float("nan")))
    return RunRecord(label, seed, path, train_seconds, evaluate_run(path, data, which, device))


def run_row_seed(
    row: Row,
    seed: int,
    data: str | Path,
    runs: str | Path,
    schedule: str = "quick",
    extra: Sequence[str] = (),
    strict: bool = True,
    log: Log = print,
    device: str | None = None,
) -> RunRecord:
    """Train (or skip) then score one row with one seed; the unit ``compare_methods.py`` and the bench repeat."""
    train_or_skip(row, seed, data, runs, schedule, extra, strict, log)
    record = load_record(row.label, seed, runs, data, device=device)
    assert record is not None  # train_or_skip returned, so summary.json exists
    return record
