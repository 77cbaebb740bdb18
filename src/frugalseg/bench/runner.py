"""Train one row with one seed unless it is finished, score its checkpoints, keep its record: a bench's unit.

Folder layout::

    <runs>/<label>-s<seed>/             a frugalseg run folder (config.json, annotations.json, logs, checkpoints/)
    <runs>/<label>-s<seed>/summary.json  written by the engine when training finished: the "done" marker
    <runs>/<label>-s<seed>/eval_best/    ``frugalseg eval`` of checkpoints/best.pt (per_volume.csv, summary.json)
    <runs>/<label>-s<seed>/eval_last/    the same for checkpoints/last.pt
    <records>/<label>-s<seed>/          the run's record (:mod:`frugalseg.bench.records`), small enough to commit

With a records folder (:func:`train_and_record`), a row x seed that has a record is finished: it is not
trained again even if its run folder is gone (a new session on a wiped machine), and the pages are built
from records alone. Without one, a run with ``summary.json`` is finished. A run with ``checkpoints/last.pt``
but no summary (killed) is resumed; anything else is trained from scratch. A finished run without a record
(trained by an older frugalseg, or before a session ended) gets its record as soon as a bench or comparison
reaches it: scored if needed, then recorded.

Because a folder is found by its label alone, what is reused is checked against the config the row asks for
(:func:`config_differences`): a run folder or record of other settings (another schedule, another ``--set``)
is an error rather than a silently wrong table row, so a record only ever holds a run of its row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from frugalseg.bench.matrix import Row, row_config
from frugalseg.bench.records import (
    CHECKPOINTS,
    PANEL_CHECKPOINT,
    SIZE_WARNING_BYTES,
    Panel,
    RunRecord,
    has_record,
    predict_panel,
    read_run,
    record_dir,
    record_size,
    recorded_method_state,
    require_recordable,
    write_record,
)
from frugalseg.config import RunConfig
from frugalseg.errors import FrugalsegError
from frugalseg.resume_check import config_changes

__all__ = [
    "CHECKPOINTS",
    "RunMismatchError",
    "RunRecord",
    "check_record",
    "check_run",
    "config_differences",
    "evaluate_run",
    "finished",
    "load_record",
    "record_finished_run",
    "run_dir",
    "train_and_record",
    "train_or_skip",
]

IGNORED_KEYS: frozenset[str] = frozenset({
    "name", "schedules", "data.num_workers", "train.device", "train.threads", "train.log_every",
})
"""Config keys that do not change what a run learns (or, for ``schedules``, only through keys compared anyway)."""

Log = Callable[[str], None]


class RunMismatchError(FrugalsegError):
    """A finished run folder holds a run of another config than the row asks for."""


def run_dir(runs: str | Path, label: str, seed: int) -> Path:
    return Path(runs) / f"{label}-s{seed}"


def finished(path: Path) -> bool:
    """Training of the run in ``path`` completed (the engine writes ``summary.json`` last)."""
    return (path / "summary.json").is_file()


def config_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What differs between a run's ``config.json`` and the config a row asks for, one line per key.

    The comparison is a resume's (:func:`frugalseg.resume_check.config_changes`) over the keys both sides
    have (a config key added after the run was trained is not compared), with :data:`IGNORED_KEYS`;
    ``data.root`` is compared as a resolved path.
    """
    changes = config_changes(stored, wanted, IGNORED_KEYS, shared_only=True)
    return [f"{key}: run has {left!r}, row wants {right!r}" for key, (left, right) in changes.items()]


def _run_differences(path: Path, config: RunConfig) -> list[str] | None:
    """:func:`config_differences` of ``path/config.json`` and ``config``; ``None`` when there is no config.json.

    Raises:
        RunMismatchError: the config.json cannot be read.
    """
    stored_path = path / "config.json"
    if not stored_path.is_file():
        return None
    try:
        stored = json.loads(stored_path.read_text())
    except (OSError, ValueError) as exc:
        raise RunMismatchError(f"{stored_path}: cannot read the run's config ({exc})") from exc
    return config_differences(stored, config.to_dict())


def check_run(path: Path, config: RunConfig) -> None:
    """Refuse the run in ``path`` if its ``config.json`` differs from ``config`` (see :func:`config_differences`).

    A run without config.json to compare passes.

    Raises:
        RunMismatchError: they differ, naming the run folder and the keys.
    """
    diff = _run_differences(path, config)
    if diff:
        raise RunMismatchError(f"{path} was trained with another config than its row: {'; '.join(diff)}. Use "
                               "another --runs folder, or delete that run to train it again")


def check_record(path: Path, config: RunConfig) -> None:
    """Refuse the record in ``path`` unless its run was trained with ``config`` (always strict).

    A record outlives its run folder and feeds committed tables, so a record of other settings is never reused.

    Raises:
        RunMismatchError: they differ, naming the record and the keys; or the record has no config.json.
    """
    diff = _run_differences(path, config)
    if diff is None:
        raise RunMismatchError(f"record {path} has no config.json to check against its row: delete that record "
                               "to record the run again")
    if diff:
        raise RunMismatchError(
            f"record {path} holds a run trained with another config than its row: {'; '.join(diff)}. Delete that "
            "record (and its run folder, if any) to train the row again, or write the results elsewhere")


def train_or_skip(
    row: Row,
    seed: int,
    data: str | Path,
    runs: str | Path,
    schedule: str = "quick",
    extra: Sequence[str] = (),
    log: Log = print,
) -> bool:
    """Train ``row`` with ``seed`` into ``<runs>/<label>-s<seed>`` unless finished; resume a killed run.

    Records are not looked at here (:func:`train_and_record` does): this is the run folder's own decision.

    Returns:
        whether a training ran now.

    Raises:
        RunMismatchError: the folder holds a run of another config.
    """
    from frugalseg.train import train_run

    path = run_dir(runs, row.label, seed)
    config = row_config(row, data, schedule, seed, extra)
    if finished(path) or (path / "checkpoints" / "last.pt").is_file():
        check_run(path, config)
    if finished(path):
        return False
    resume = (path / "checkpoints" / "last.pt").is_file()
    t0 = time.perf_counter()
    train_run(config, path, resume=resume, overwrite=not resume, progress=False)
    log(f"[{row.label} s{seed}] trained in {time.perf_counter() - t0:.0f} s")
    return True


def evaluate_run(path: Path, data: str | Path, which: Sequence[str] = CHECKPOINTS,
                 device: str | None = None) -> dict[str, dict[str, Any]]:
    """Score ``checkpoints/<which>.pt`` of a finished run into ``eval_<which>/`` unless already scored."""
    from frugalseg.evaluation.checkpoint import evaluate_checkpoint

    summaries = {}
    for name in which:
        out = path / f"eval_{name}"
        if not (out / "summary.json").is_file():
            evaluate_checkpoint(path / "checkpoints" / f"{name}.pt", data, out, overwrite=True, device=device)
        summaries[name] = json.loads((out / "summary.json").read_text())
    return summaries


def load_record(label: str, seed: int, runs: str | Path, data: str | Path,
                which: Sequence[str] = CHECKPOINTS, device: str | None = None) -> RunRecord | None:
    """A finished run read from its run folder (scored if needed); ``None`` when it has not finished."""
    path = run_dir(runs, label, seed)
    if not finished(path):
        return None
    evaluate_run(path, data, which, device)
    return read_run(path, label, seed, which)


def _panel(run: Path, data: str | Path, device: str | None, log: Log, name: str) -> Panel | None:
    """The prediction panel's labels of the run's checkpoint, or ``None`` (logged) where they cannot be made.

    The panel is a figure; a run whose checkpoint is gone, or data without a validation volume, still gets a
    record of its scores.
    """
    checkpoint = run / "checkpoints" / f"{PANEL_CHECKPOINT}.pt"
    if not checkpoint.is_file():
        log(f"[{name}] no prediction panel in the record: {checkpoint} is missing")
        return None
    try:
        panel = predict_panel(checkpoint, data, device)
    except FrugalsegError as exc:
        log(f"[{name}] no prediction panel in the record: {exc}")
        return None
    if panel is None:
        log(f"[{name}] no prediction panel in the record: {data} has no validation volume with a reference")
    return panel


def _record_meta(row: Row, seed: int, schedule: str, data: str | Path, run: Path) -> dict[str, Any]:
    """``record.json``'s provenance: what was trained, on what, where, when and by which code."""
    from frugalseg.bench.provenance import git_commit, utc_now

    return {"label": row.label, "row": row.spec, "seed": seed, "schedule": schedule, "data": str(data),
            "run": Path(run).as_posix(), "written": utc_now(), "commit": git_commit()}


def record_finished_run(
    row: Row,
    seed: int,
    data: str | Path,
    runs: str | Path,
    records: str | Path,
    schedule: str = "quick",
    extra: Sequence[str] = (),
    log: Log = print,
    device: str | None = None,
) -> Path | None:
    """Give the finished run folder of ``row`` x ``seed`` its record, scoring it first if needed.

    Returns:
        the record (also when it existed already); ``None`` when the run has not finished, or when it was
        trained with another config than its row (logged: only runs of their row are recorded).
    """
    dest = record_dir(records, row.label, seed)
    if has_record(dest):
        return dest
    path = run_dir(runs, row.label, seed)
    if not finished(path):
        return None
    name = f"{row.label} s{seed}"
    diff = _run_differences(path, row_config(row, data, schedule, seed, extra))
    if diff:
        log(f"[{name}] {path} not recorded: trained with another config than its row ({'; '.join(diff)})")
        return None
    evaluate_run(path, data, CHECKPOINTS, device)
    require_recordable(path)
    write_record(path, dest, _record_meta(row, seed, schedule, data, path), _panel(path, data, device, log, name),
                 method_state=recorded_method_state(path))
    size = record_size(dest)
    log(f"[{name}] recorded in {dest} ({size / 1000:.0f} KB)")
    if size > SIZE_WARNING_BYTES:
        log(f"warning: record {dest} is {size / 1000:.0f} KB, more than the {SIZE_WARNING_BYTES // 1000} KB a "
            "committed record is expected to take")
    return dest


def train_and_record(
    row: Row,
    seed: int,
    data: str | Path,
    runs: str | Path,
    records: str | Path | None = None,
    schedule: str = "quick",
    extra: Sequence[str] = (),
    log: Log = print,
    device: str | None = None,
) -> bool:
    """Make ``row`` x ``seed`` finished: trained (or resumed), scored and, with ``records``, recorded.

    A row x seed with a record is finished whatever its run folder holds (or whether it exists): the record
    is checked against the row (:func:`check_record`) and nothing is trained. The record is written right
    after the run is scored, so a session that ends later keeps it.

    Returns:
        whether a training ran now.

    Raises:
        RunMismatchError: the record, or the run folder, holds another config.
    """
    if records is not None:
        dest = record_dir(records, row.label, seed)
        if has_record(dest):
            check_record(dest, row_config(row, data, schedule, seed, extra))
            return False
    trained = train_or_skip(row, seed, data, runs, schedule, extra, log)
    if records is None:
        evaluate_run(run_dir(runs, row.label, seed), data, CHECKPOINTS, device)
    else:
        record_finished_run(row, seed, data, runs, records, schedule, extra, log, device)
    return trained
