"""Run records: the small, committed trace of a finished run, from which every table and figure is rebuilt.

Why: a working session lasts a few hours and only what is committed to git survives it, while a run folder
(checkpoints, logs, the annotation file) is too large to commit. So as soon as a run is trained and scored,
the runner copies what the pages need into a record of a few tens of KB; ``frugalseg bench`` treats a row x
seed that has a record as finished (it is not trained again, even when its run folder is gone) and builds its
pages (``docs/results.md`` and the method pages' blocks) from records alone. The records of every page live in
one store, ``docs/results/runs/`` (:mod:`frugalseg.bench.options`), so a row's records exist once. Layout::

    <records>/<label>-s<seed>/
        record.json                  format, row label and spec, seed, schedule, data, the run folder it was
                                     trained in, date, commit, annotation counts, the prediction panel's slices
        config.json                  the run's resolved config (the row check compares it, as for a run folder)
        summary.json                 the run's training summary (training seconds, best iteration, ...)
        val_log.csv                  (optional) the validation curve: Dice at every ``train.val_every``
                                     iterations, as the engine logged it (records of before 2026-12-06 lack it)
        eval_best/summary.json       ``frugalseg eval`` of checkpoints/best.pt, as the runner wrote it
        eval_best/per_volume.csv
        eval_last/summary.json       the same for checkpoints/last.pt
        eval_last/per_volume.csv
        panel.npz                    (optional) last.pt's predicted labels (uint8) on the panel's validation
                                     slices; the image and reference are read from the data at page time
        method_state.npz             (optional) the entries of last.pt's method state that
                                     :data:`RECORDED_METHOD_STATE` lists for the run's method (DII's γ per
                                     weak instance), for analyses that read them after the run folder is gone

The annotation counts (masks, clicks, boxes, ... of the run's ``annotations.json``, :class:`AnnotationCounts`)
replace the annotation file itself (about 140 KB on the 70-patient ACDC budgets): the cost model is applied to
the counts, so ``--cost-model`` still changes the page without the file.

A record is written once, into a hidden temporary folder beside its final place that is then renamed (an
atomic step on one file system), so a killed process leaves either a whole record or none: a folder
``<label>-s<seed>`` with a ``record.json`` is complete. Leftover ``.<label>-s<seed>.<hex>.tmp`` folders of a
killed writer are ignored (and git-ignored).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.bench.cost import AnnotationCounts, count_annotations
from frugalseg.errors import FrugalsegError

__all__ = [
    "CHECKPOINTS",
    "METHOD_STATE_FILE",
    "RECORDED_METHOD_STATE",
    "RECORD_FORMAT",
    "VALIDATION_LOG",
    "MethodState",
    "Panel",
    "RecordError",
    "RunRecord",
    "count_run_annotations",
    "has_record",
    "predict_panel",
    "read_record",
    "read_run",
    "read_validation_log",
    "record_dir",
    "record_size",
    "recorded_method_state",
    "require_recordable",
    "write_record",
]

RECORD_FORMAT = "frugalseg.bench.record/1"
"""``format`` of ``record.json``; a reader refuses any other, so an old checkout never misreads a new record."""

CHECKPOINTS: tuple[str, ...] = ("best", "last")
"""Checkpoints scored for every run: ``last.pt`` (no selection, the protocol) and ``best.pt`` (selected on
the validation volumes that also score it, as SSL4MIS does: optimistic)."""

PANEL_CHECKPOINT = "last"
"""The checkpoint whose predictions the prediction panel shows (the main tables' checkpoint)."""

PANEL_SLICES = 4
"""Slices of the first validation volume in the prediction panel."""

SIZE_WARNING_BYTES = 100_000
"""A record above this size is reported: records are committed, and one is expected to take tens of KB."""

EVAL_FILES: tuple[str, ...] = ("summary.json", "per_volume.csv")

VALIDATION_LOG = "val_log.csv"
"""The engine's validation curve in a run folder, copied into its record when the run has one, so learning
curves (``scripts/schedule_targets.py``: is a row still rising at its last iteration?) outlive the run folder."""


METHOD_STATE_FILE = "method_state.npz"
"""The record's copy of the method state entries :data:`RECORDED_METHOD_STATE` lists for its method (compressed)."""

RECORDED_METHOD_STATE: dict[str, tuple[str, ...]] = {
    "dii_dcr": ("indicators.gamma", "indicators.steps"),  # scripts/dii_instance_quality.py reads them
}
"""Keys of a method's checkpointed state (``Method.state_dict``) that a run's record keeps, by method name.

Small state that an analysis reads after training (DII's γ per weak instance), so the analysis can be redone
from the committed record once the run folder and its checkpoints are gone. What a record keeps is the
bench's business, not the method's: a method not listed keeps nothing."""


class RecordError(FrugalsegError):
    """A record (or the run folder it is made from) is incomplete or unreadable."""


@dataclass(frozen=True)
class Panel:
    """Predicted labels of one run on the prediction panel's slices.

    Attributes:
        case: the validation case the slices come from.
        slices: their indices in the case's volume.
        labels: (slices, H, W) uint8 class labels at the volume's stored grid.
    """

    case: str
    slices: tuple[int, ...]
    labels: np.ndarray


@dataclass(frozen=True)
class MethodState:
    """The recorded entries of a checkpoint's method state (see :data:`RECORDED_METHOD_STATE`).

    Attributes:
        checkpoint: the checkpoint they were read from (``last``).
        iteration: the training iteration of that checkpoint.
        arrays: the entries by state-dict key (``indicators.gamma``, ...), as numpy arrays.
    """

    checkpoint: str
    iteration: int
    arrays: dict[str, np.ndarray]


@dataclass
class RunRecord:
    """A finished run and its scores, read from a record (or, without records, from its scored run folder)."""

    label: str
    seed: int
    path: Path
    """The folder read: a record, or a run folder."""
    train_seconds: float
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per checkpoint name: the ``summary.json`` of its evaluation."""
    counts: AnnotationCounts | None = None
    """What the run's annotation file held (``None``: the run had none)."""
    run: str = ""
    """The run folder it was trained in, as recorded (it may be gone)."""
    panel_info: dict[str, Any] | None = None
    method_state_info: dict[str, Any] | None = None

    def per_volume_csv(self, which: str) -> Path:
        return self.path / f"eval_{which}" / "per_volume.csv"

    def panel(self) -> Panel | None:
        """The recorded panel predictions, ``None`` when the record has none.

        Raises:
            RecordError: the record names a panel file that is missing or unreadable.
        """
        if not self.panel_info:
            return None
        path = self.path / self.panel_info["file"]
        try:
            with np.load(path) as npz:
                labels = npz["labels"]
        except (OSError, KeyError, ValueError) as exc:
            raise RecordError(f"{path}: cannot read the recorded predictions ({exc})") from exc
        return Panel(str(self.panel_info["case"]), tuple(int(s) for s in self.panel_info["slices"]), labels)

    def method_state(self) -> MethodState | None:
        """The recorded method state, ``None`` when the record has none (the method records nothing).

        Raises:
            RecordError: the record names a state file that is missing, unreadable or lacks a listed key.
        """
        info = self.method_state_info
        if not info:
            return None
        path = self.path / info["file"]
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in info["keys"]}
        except (OSError, KeyError, ValueError) as exc:
            raise RecordError(f"{path}: cannot read the recorded method state ({exc})") from exc
        return MethodState(str(info["checkpoint"]), int(info["iteration"]), arrays)

    def same_run_folder(self) -> Path | None:
        """The run folder this record names, when it still holds the very run recorded; else ``None``.

        A run folder outlives its record and can be reused by a later training of the same label, so
        only a folder whose ``config.json`` is byte-identical to the record's counts as the same run.
        """
        if not self.run:
            return None
        run = Path(self.run)
        config = run / "config.json"
        recorded = self.path / "config.json"
        if not config.is_file() or not recorded.is_file() or config.read_bytes() != recorded.read_bytes():
            return None
        return run

    def validation_curve(self) -> list[dict[str, float]]:
        """The recorded validation curve, one dict per validation (``iteration``, ``dice``, per-class Dice, ...).

        Empty when the record has none (written before records kept it, or a run that never validated).

        Raises:
            RecordError: the file exists but is not a readable curve.
        """
        return read_validation_log(self.path / VALIDATION_LOG)


def read_validation_log(path: Path) -> list[dict[str, float]]:
    """Rows of an engine validation log (``val_log.csv``) as floats; ``[]`` when the file does not exist.

    Raises:
        RecordError: the file is unreadable, lacks ``iteration`` or ``dice``, or holds a non-number.
    """
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        curve = [{key: float(value) for key, value in row.items() if value not in ("", None)} for row in rows]
    except (OSError, ValueError, csv.Error) as exc:
        raise RecordError(f"{path}: cannot read the validation curve ({exc})") from exc
    if any("iteration" not in row or "dice" not in row for row in curve):
        raise RecordError(f"{path}: a validation curve needs the columns iteration and dice")
    return curve


@dataclass(frozen=True)
class SeedMean:
    """Validation curves of several seeds averaged point by point: each column's mean and sample std."""

    seeds: int
    """How many curves were averaged (empty ones are left out)."""
    iterations: np.ndarray
    """The iterations every curve holds, ascending."""
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    """Sample std over the seeds (0 for one curve)."""


def mean_over_seeds(curves: Sequence[Sequence[Mapping[str, float]]]) -> SeedMean:
    """Point-wise mean and std over seeds of curves (rows with ``iteration``), at the iterations all of them hold.

    Every column that all those rows hold is averaged; a curve without rows is left out.
    """
    by_iteration = [{int(row["iteration"]): row for row in curve} for curve in curves if curve]
    if not by_iteration:
        return SeedMean(0, np.array([], dtype=np.int64), {}, {})
    common = sorted(set.intersection(*(set(c) for c in by_iteration)))
    rows = [c[i] for c in by_iteration for i in common]
    columns = sorted(set.intersection(*(set(r) for r in rows)) - {"iteration"}) if rows else []
    mean, std = {}, {}
    for key in columns:
        values = np.array([[c[i][key] for i in common] for c in by_iteration], dtype=np.float64)
        mean[key] = values.mean(axis=0)
        std[key] = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(len(common))
    return SeedMean(len(by_iteration), np.array(common, dtype=np.int64), mean, std)


def record_dir(records: str | Path, label: str, seed: int) -> Path:
    """The record of a row x seed: named like its run folder, ``<records>/<label>-s<seed>``."""
    return Path(records) / f"{label}-s{seed}"


def has_record(path: Path) -> bool:
    """A record exists at ``path``: ``record.json`` is only ever there in a whole record (see the docstring)."""
    return (path / "record.json").is_file()


def row_record_dirs(records: str | Path, label: str) -> list[Path]:
    """The whole records of one row in a record store, in seed order (``[]`` for none).

    Only ``<label>-s<integer>`` folders count, so a row whose name extends another (``supervised7`` and
    ``supervised7_b4``) never reads the other's seeds.
    """
    prefix = f"{label}-s"
    found = [p for p in Path(records).glob(f"{label}-s*") if p.name[len(prefix):].isdigit() and has_record(p)]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: cannot read the {what} ({exc})") from exc
    if not isinstance(value, dict):
        raise RecordError(f"{path}: the {what} is not a JSON object")
    return value


def _summaries(folder: Path, which: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {name: _read_json(folder / f"eval_{name}" / "summary.json", f"evaluation summary of {name}.pt")
            for name in which}


def _train_seconds(folder: Path) -> float:
    summary = _read_json(folder / "summary.json", "training summary")
    return float(summary.get("train_seconds", float("nan")))


def _counts_from_dict(tree: dict[str, Any] | None, path: Path) -> AnnotationCounts | None:
    if tree is None:
        return None
    try:
        return AnnotationCounts(**tree)
    except TypeError as exc:
        raise RecordError(f"{path}: annotation counts {tree!r} do not fit this frugalseg ({exc})") from exc


def read_record(path: Path, which: Sequence[str] = CHECKPOINTS, label: str | None = None,
                seed: int | None = None) -> RunRecord:
    """Read the record at ``path``; with ``label`` and ``seed``, check that it is the record of that row x seed.

    The check catches a record folder copied or renamed by hand: the folder name is what finds a record,
    ``record.json`` is what it holds.

    Raises:
        RecordError: no ``record.json``, another format, a file the record must hold is missing, or the
            record is of another row or seed.
    """
    meta_path = path / "record.json"
    if not meta_path.is_file():
        raise RecordError(f"{path}: not a run record (no record.json)")
    meta = _read_json(meta_path, "record")
    if meta.get("format") != RECORD_FORMAT:
        raise RecordError(f"{meta_path}: format {meta.get('format')!r}, this frugalseg reads {RECORD_FORMAT!r}")
    missing = [p for p in _required_files(path, which) if not p.is_file()]
    if missing:
        raise RecordError(f"{path}: incomplete record, missing {', '.join(str(p) for p in missing)}")
    if (label is not None and meta.get("label") != label) or (seed is not None and meta.get("seed") != seed):
        raise RecordError(f"{meta_path}: the record of {meta.get('label')!r} seed {meta.get('seed')!r}, found where "
                          f"the record of {label!r} seed {seed!r} belongs")
    return RunRecord(
        label=str(meta["label"]), seed=int(meta["seed"]), path=path, train_seconds=_train_seconds(path),
        summaries=_summaries(path, which), counts=_counts_from_dict(meta.get("annotations"), meta_path),
        run=str(meta.get("run", "")), panel_info=meta.get("panel"), method_state_info=meta.get("method_state"),
    )


def read_run(path: Path, label: str, seed: int, which: Sequence[str] = CHECKPOINTS) -> RunRecord:
    """A :class:`RunRecord` of a scored run folder (:func:`~frugalseg.bench.runner.load_record`)."""
    return RunRecord(label=label, seed=seed, path=path, train_seconds=_train_seconds(path),
                     summaries=_summaries(path, which), counts=count_run_annotations(path), run=path.as_posix())


def _required_files(folder: Path, which: Sequence[str]) -> list[Path]:
    """The files a record copies from its run folder (so the ones a run folder must have to be recorded)."""
    return [folder / "config.json", folder / "summary.json",
            *(folder / f"eval_{name}" / f for name in which for f in EVAL_FILES)]


def require_recordable(run: Path, which: Sequence[str] = CHECKPOINTS) -> None:
    """Check that the run folder holds every file its record copies (before anything slow is done for it).

    Raises:
        RecordError: naming the run folder and the missing files.
    """
    missing = [p for p in _required_files(run, which) if not p.is_file()]
    if missing:
        raise RecordError(f"{run}: cannot record this run, missing {', '.join(str(p) for p in missing)}")


def count_run_annotations(run: Path) -> AnnotationCounts | None:
    """Counts of the run's ``annotations.json`` (``None`` when the run has none)."""
    from frugalseg.data.annotations import load_annotations

    path = run / "annotations.json"
    return count_annotations(load_annotations(path)) if path.is_file() else None


def predict_panel(checkpoint: Path, data: str | Path, device: str | None = None,
                  count: int = PANEL_SLICES) -> Panel | None:
    """``checkpoint``'s labels on ``count`` foreground slices of the data's first validation volume.

    The same case and slices for every run (the first validation case, :func:`~frugalseg.bench.figures.pick_slices`
    of its reference), so a panel compares methods on the same images. ``None`` where the data has no
    validation volume with a reference.

    Raises:
        FrugalsegError: the checkpoint or the data cannot be read.
    """
    import torch

    from frugalseg.bench.figures import pick_slices
    from frugalseg.data.sources import open_source
    from frugalseg.evaluation.inference import predict_volume
    from frugalseg.methods.restore import load_trained_model

    source = open_source(data)
    val = source.case_ids("val")
    if not val:
        return None
    case = source.load_case(val[0])
    if case.label is None or case.image.ndim != 3:
        return None
    picks = pick_slices(case.label, count)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_trained_model(checkpoint, dev)
    labels = predict_volume(model.network, case.image[picks], patch_size=model.config.data.patch_size, device=dev)
    if labels.size and int(labels.max()) > 255:
        raise RecordError(f"{checkpoint}: predicts class {int(labels.max())}, more than a uint8 panel holds")
    return Panel(case.case_id, tuple(int(p) for p in picks), labels.astype(np.uint8))


def recorded_method_state(run: Path, checkpoint: str = PANEL_CHECKPOINT) -> MethodState | None:
    """The entries of the run's checkpoint state that :data:`RECORDED_METHOD_STATE` lists for its method.

    ``None`` when the method records nothing.

    Raises:
        RecordError: the run's config, its checkpoint or a listed state entry is missing or unreadable.
    """
    from frugalseg.training.checkpoint import load_training_state

    config = _read_json(run / "config.json", "run config")
    try:
        keys = RECORDED_METHOD_STATE.get(str(config["method"]["name"]), ())
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{run / 'config.json'}: no method.name ({exc})") from exc
    if not keys:
        return None
    path = run / "checkpoints" / f"{checkpoint}.pt"
    try:
        saved = load_training_state(path)
    except FrugalsegError as exc:
        raise RecordError(f"{path}: cannot read the method state to record ({exc})") from exc
    missing = [key for key in keys if key not in saved.method]
    if missing:
        raise RecordError(f"{path}: the method state lacks {', '.join(missing)}, which its method records")
    return MethodState(checkpoint, saved.iteration, {key: saved.method[key].cpu().numpy() for key in keys})


def _copy_synced(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    _fsync(dst)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _write_bytes_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_record(
    run: Path,
    dest: Path,
    meta: dict[str, Any],
    panel: Panel | None = None,
    which: Sequence[str] = CHECKPOINTS,
    method_state: MethodState | None = None,
) -> Path:
    """Write the record of the scored run folder ``run`` to ``dest``, atomically; return ``dest``.

    Args:
        run: a finished run folder with ``config.json``, ``summary.json`` and ``eval_<which>/``.
        dest: the record folder (``<records>/<label>-s<seed>``); it must not exist yet.
        meta: what ``record.json`` says beside the format, the annotation counts and the panel: at least
            ``label`` and ``seed`` (the runner adds row spec, schedule, data, run folder, date, commit).
        panel: the predictions of the prediction panel, if any.
        method_state: the method state entries to keep (:func:`recorded_method_state`), if any.

    The files are written into a hidden sibling folder, synced, then the folder is renamed to ``dest``:
    a killed writer never leaves a folder that :func:`has_record` counts as finished.

    Raises:
        RecordError: the run folder lacks a file the record copies, or ``dest`` exists already.
    """
    require_recordable(run, which)
    if has_record(dest):
        raise RecordError(f"{dest}: a record exists already (delete it to record the run again)")
    if dest.exists():
        raise RecordError(f"{dest}: exists but is not a record (no record.json); move it away to record the run")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        _fill_record(tmp, run, meta, panel, which, method_state)
        os.rename(tmp, dest)  # atomic; fails if another writer won the race (dest then a non-empty folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _sync_folder(dest.parent)
    return dest


def _fill_record(tmp: Path, run: Path, meta: dict[str, Any], panel: Panel | None, which: Sequence[str],
                 method_state: MethodState | None) -> None:
    """Write the record's files into the (hidden) folder ``tmp``, each synced, ``record.json`` last.

    The copies of the run's files come first, then the arrays (panel, method state), then ``record.json``,
    which says what the others are.
    """
    for src in _required_files(run, which):
        _copy_synced(src, tmp / src.relative_to(run))
    if (run / VALIDATION_LOG).is_file():
        _copy_synced(run / VALIDATION_LOG, tmp / VALIDATION_LOG)
    tree = {"format": RECORD_FORMAT, **meta}
    counts = count_run_annotations(run)
    tree["annotations"] = None if counts is None else dataclasses.asdict(counts)
    tree["panel"] = None
    if panel is not None:
        _write_npz_synced(tmp / "panel.npz", {"labels": panel.labels})
        tree["panel"] = {"file": "panel.npz", "checkpoint": PANEL_CHECKPOINT, "case": panel.case,
                         "slices": list(panel.slices), "shape": list(panel.labels.shape)}
    if method_state is not None:
        _write_npz_synced(tmp / METHOD_STATE_FILE, dict(method_state.arrays))
        tree["method_state"] = {"file": METHOD_STATE_FILE, "checkpoint": method_state.checkpoint,
                                "iteration": method_state.iteration, "keys": sorted(method_state.arrays)}
    _write_bytes_synced(tmp / "record.json", (json.dumps(tree, indent=2) + "\n").encode())


def _write_npz_synced(path: Path, arrays: dict[str, Any]) -> None:
    """Compressed ``.npz`` of ``arrays``, synced (numpy's stubs read ``**arrays`` as ``allow_pickle``: ``Any``)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _write_bytes_synced(path, buf.getvalue())


def _sync_folder(folder: Path) -> None:
    """Make the rename durable where the OS allows syncing a folder (a crash after it keeps the record)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def record_size(path: Path) -> int:
    """Bytes of every file of a record (the runner warns above :data:`SIZE_WARNING_BYTES`)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
