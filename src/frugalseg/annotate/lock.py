"""One writer per annotation file: an OS lock on ``<file>.lock`` beside it, naming its holder's pid.

Two ``frugalseg annotate`` servers on one file would each hold their own copy and overwrite the
other's actions on every save. ``fcntl.flock`` is released by the kernel when the holder dies (even
by SIGKILL), so a crashed server never leaves a stale lock behind; the pid written into the lock
file only makes the refusal say who holds it. POSIX only (Linux, macOS).

A run-folder lock for ``frugalseg train`` (issue #22) may come to share this code.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from frugalseg.errors import FrugalsegError

__all__ = ["FileLock", "LockedError", "lock_path_of"]


class LockedError(FrugalsegError):
    """Another process holds the lock of a file."""


def lock_path_of(path: Path) -> Path:
    """``annotations.json`` → ``annotations.json.lock`` (a hidden name would hide who holds what)."""
    return path.with_name(path.name + ".lock")


class FileLock:
    """An exclusive, non-blocking lock on ``<target>.lock``; ``with FileLock(target):`` or acquire/release.

    Args:
        target: the file the lock protects.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = lock_path_of(target)
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockedError` naming the file and the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LockedError(f"{self.target} is open in another frugalseg annotate (pid {holder}, lock "
                              f"{self.path}); close that one first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Drop the lock (the lock file stays: removing it could race with a process about to lock it)."""
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
