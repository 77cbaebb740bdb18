"""One writer per annotation file: a :class:`~frugalseg.locks.FileLock` on ``<file>.lock`` beside it.

Two ``frugalseg annotate`` servers on one file would each hold their own copy and overwrite the
other's actions on every save. The lock is the run folder's (:mod:`frugalseg.locks`: freed by the
kernel when its holder dies, naming the holder's pid); this module only names the lock file and says
what the refusal says.
"""

from __future__ import annotations

from pathlib import Path

from frugalseg.errors import FrugalsegError
from frugalseg.locks import FileLock

__all__ = ["LockedError", "annotation_lock", "lock_path_of"]


class LockedError(FrugalsegError):
    """Another process holds the lock of a file."""


def lock_path_of(path: Path) -> Path:
    """``annotations.json`` → ``annotations.json.lock`` (a hidden name would hide who holds what)."""
    return path.with_name(path.name + ".lock")


def annotation_lock(target: Path) -> FileLock:
    """The (not yet taken) lock of the annotation file ``target``; taking it while another server holds it
    raises :class:`LockedError` naming the file and the holder."""
    lock = lock_path_of(target)

    def busy(holder: str) -> LockedError:
        return LockedError(f"{target} is open in another frugalseg annotate ({holder}, lock {lock}); "
                           "close that one first")

    return FileLock(lock, busy)
