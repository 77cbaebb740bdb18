"""The run folder's safety: one writer at a time, nothing replaced before the new run has started cleanly.

A run folder holds hours of training. Three promises protect it (DESIGN.md "Safety of files"):

1. **Checked before changed.** :meth:`RunFolder.check` runs before any input is read and refuses an
   existing folder without ``--resume``/``--overwrite``, a resume with nothing to resume, a path that
   is a file, and a resume whose command line changes the training (:mod:`frugalseg.resume_check`).
   The folder is touched only by :meth:`RunFolder.open`, which the trainer calls once every input
   (config, data, annotations, network, device, checkpoint) has been checked.
2. **One writer.** :meth:`RunFolder.open` takes an exclusive ``fcntl.flock`` on ``.frugalseg.lock``
   inside the folder (:class:`frugalseg.locks.FileLock`, which ``frugalseg annotate`` takes on its file too)
   and holds it for the run's life. The operating system frees the lock when the process ends however it
   ends (SIGKILL included), so a killed run never blocks its own resume. A second run into a locked folder
   is refused, naming the holder's pid (written into the lock file).
3. **Overwrite is a swap, not a delete.** ``--overwrite`` renames the old folder aside
   (``.<name>.replaced-<pid>-<time>`` beside it) and deletes it only once the new run has written its
   first checkpoint (:meth:`RunFolder.checkpoint_written`). A run that fails before then is removed
   and the old folder is put back (:meth:`RunFolder.abort`); a fresh run that fails before its first
   checkpoint leaves nothing behind.

Only SIGKILL or power loss inside that window can leave an old folder aside; the next run into the
same folder names it (:meth:`RunFolder.check`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from enum import Enum
from pathlib import Path
from typing import Any

from frugalseg.errors import CheckpointError, FrugalsegError, OutputExistsError
from frugalseg.locks import FileLock, is_locked, lock_holder

__all__ = ["LOCK_NAME", "RUN_MARKER", "RunFolder", "RunFolderBusy", "RunMode", "check_output_folder"]

RUN_MARKER = "config.json"
"""A folder holding this file is a frugalseg run folder."""
LOCK_NAME = ".frugalseg.lock"
"""The lock file inside a run folder; it stays after the run (an empty lock file is harmless)."""
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"


class RunMode(str, Enum):
    """How a run treats its folder: a new one, continuing one, or replacing one."""

    NEW = "new"
    RESUME = "resume"
    OVERWRITE = "overwrite"


class RunFolderBusy(FrugalsegError):
    """Another process holds the run folder's lock."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: run folder is in use by {holder}; wait for it to finish or choose another --out")


def check_output_folder(path: str | Path, what: str = "--out") -> Path:
    """Refuse an output folder path that names an existing file (the error names it; nothing is written)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(path, f"it is a file, not a folder; give {what} a folder path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputExistsError(parent, f"it is a file, so {path} cannot be a folder inside it")
    return path


class RunFolder:
    """The folder of one training run, from the first check to the last write.

    Args:
        path: the run folder (``--out``).
        mode: new run, resume, or overwrite.

    Use: ``check()`` before reading any input; ``open(...)`` once every input is checked (it takes
    the lock and, on overwrite, moves the old folder aside); ``checkpoint_written()`` after each save
    of ``last.pt``; ``close()`` on success or ``abort()`` on any failure.
    """

    def __init__(self, path: str | Path, mode: RunMode = RunMode.NEW) -> None:
        self.path = Path(path)
        self.mode = RunMode(mode)
        self._lock = _folder_lock(self.path)
        self._old_lock = _folder_lock(self.path)
        self._aside: Path | None = None
        self._old_had_lock = True
        self._before: set[str] | None = None
        self._opened = False
        self._committed = False
        self._changes: dict[str, tuple[Any, Any]] = {}
        self._resumed_at = 0

    # ---------------------------------------------------------------------------------------------------- checks
    def check(self) -> None:
        """Every refusal that needs no input read: raise before anything is written.

        Raises:
            OutputExistsError: the path is a file; an existing non-empty folder without resume or
                overwrite; an overwrite of a folder that is not a run folder.
            CheckpointError: a resume with no ``checkpoints/last.pt``.
            RunFolderBusy: another process holds the folder's lock.
        """
        check_output_folder(self.path)
        self._note_leftovers()
        if self.path.is_dir():
            _probe_lock(self.path)  # first: "in use by pid N" says more than "already exists"
        if self.mode is RunMode.RESUME:
            if not (self.path / LAST_CHECKPOINT).is_file():
                raise CheckpointError(f"{self.path}: nothing to resume (no {LAST_CHECKPOINT.as_posix()})")
        elif _has_content(self.path, ignore_lock=True):
            if self.mode is RunMode.NEW:
                raise OutputExistsError(self.path, "pass --resume to continue that run or --overwrite to replace it")
            if not (self.path / RUN_MARKER).is_file():
                raise OutputExistsError(self.path, "it is not a frugalseg run folder; refusing to delete it")

    def _note_leftovers(self) -> None:
        """Name an old folder a killed ``--overwrite`` left aside, so the user can find it."""
        if not self.path.parent.is_dir():
            return
        for aside in sorted(self.path.parent.glob(f".{self.path.name}.replaced-*")):
            if aside.is_dir() and not is_locked(aside / LOCK_NAME):
                print(f"frugalseg: note: {aside} holds a run that an interrupted --overwrite moved aside; "
                      "move it back or delete it", flush=True)

    # ---------------------------------------------------------------------------------------------------- writes
    def open(self, config: dict[str, Any] | None = None) -> None:
        """Take the folder: lock it, move an old run aside (overwrite), write ``config.json`` (not on resume).

        Call only once every input is checked: from here on the folder changes.
        """
        if self.mode is RunMode.OVERWRITE and _has_content(self.path, ignore_lock=True):
            self._old_had_lock = (self.path / LOCK_NAME).exists()
            self._old_lock.acquire(write_pid=False)
            self._aside = self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}-{time.time_ns()}")
            os.replace(self.path, self._aside)
        self._before = {p.name for p in self.path.iterdir()} if self.path.is_dir() else None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()  # another run may have got here first: then nothing is removed
            if self.mode is not RunMode.RESUME and _has_content(self.path, ignore_lock=True):
                raise OutputExistsError(self.path, "another run wrote into it since it was checked")
        except BaseException:
            self._unlock()
            self._restore()
            raise
        self._opened = True  # from here on, what is in the folder is this run's (abort may remove it)
        self._old_lock.release()
        if config is not None and self.mode is not RunMode.RESUME:
            (self.path / RUN_MARKER).write_text(json.dumps(config, indent=2) + "\n")
        if config is not None and self._changes:
            from frugalseg.resume_check import record_changes

            record_changes(self.path, self._changes, self._resumed_at, config)

    def accept_changes(self, changes: dict[str, tuple[Any, Any]], iteration: int) -> None:
        """Changes a ``--resume-with-changes`` accepted: :meth:`open` logs them and stores the new config."""
        self._changes, self._resumed_at = dict(changes), iteration

    def checkpoint_written(self) -> None:
        """The new run can be resumed from now on: the old folder (overwrite) is no longer needed."""
        if self._committed or not self._opened:
            return
        self._committed = True
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None

    def close(self) -> None:
        """The run ended well: commit (if not yet) and free the lock."""
        self.checkpoint_written()
        self._unlock()

    def abort(self) -> None:
        """The run failed. Before its first checkpoint a new run leaves nothing and the old folder returns.

        A folder this process never opened (another process holds it, or a DDP rank other than 0) is left alone.
        """
        self._unlock()
        if self._opened and not self._committed and self.mode is not RunMode.RESUME:
            self._remove_new()
            self._restore()

    # ---------------------------------------------------------------------------------------------------- helpers
    def _remove_new(self) -> None:
        """Delete what this run created: the whole folder, or (a folder that was there, empty) its new entries."""
        if self._before is None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name in self._before:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def _restore(self) -> None:
        """Put the folder moved aside back under its name (when the name is free)."""
        self._old_lock.release()
        if self._aside is None:
            return
        if self.path.is_dir() and not _has_content(self.path):
            self.path.rmdir()
        if not self.path.exists():
            if not self._old_had_lock:
                (self._aside / LOCK_NAME).unlink(missing_ok=True)
            os.replace(self._aside, self.path)
            self._aside = None

    def _unlock(self) -> None:
        self._lock.release()


def _has_content(path: Path, ignore_lock: bool = False) -> bool:
    """Whether ``path`` is a folder holding anything (the lock file alone counts as empty when asked)."""
    if not path.is_dir():
        return False
    return any(not (ignore_lock and p.name == LOCK_NAME) for p in path.iterdir())


def _folder_lock(folder: Path) -> FileLock:
    """The lock of the run folder ``folder`` (not yet taken): refused with :class:`RunFolderBusy`."""
    return FileLock(folder / LOCK_NAME, lambda holder: RunFolderBusy(folder, holder))


def _probe_lock(folder: Path) -> None:
    """Refuse early when another run holds ``folder`` (reads the lock file; never creates one)."""
    holder = lock_holder(folder / LOCK_NAME)
    if holder is not None:
        raise RunFolderBusy(folder, holder)
