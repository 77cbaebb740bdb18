"""One writer at a time: an exclusive ``fcntl.flock`` on a lock file that names its holder's pid.

A run folder (``frugalseg train``) and an annotation file (``frugalseg annotate``) each allow one writer:
two would overwrite each other's work. Both take a :class:`FileLock` on a lock file beside what they
protect. ``fcntl.flock`` is released by the kernel when the holder dies (even by SIGKILL), so a crashed
process never leaves a stale lock behind; the pid written into the lock file only makes a refusal say
who holds it, and a released lock file is emptied, so that it names no one. POSIX only (Linux, macOS).

Each user says what a refusal says (``busy``): the lock knows which file is locked, the user knows why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from frugalseg.errors import FrugalsegError

__all__ = ["FileLock", "LockHeldError", "is_locked", "lock_holder"]


class LockHeldError(FrugalsegError):
    """Another process holds a lock file (the refusal a :class:`FileLock` raises when given no ``busy``)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by {holder}")


class FileLock:
    """An exclusive, non-blocking lock on the file ``path``; ``with FileLock(path):`` or acquire/release.

    Args:
        path: the lock file (created, with its folder, on :meth:`acquire`; it stays after release, since
            removing it could race with a process about to lock it).
        busy: the error to raise when another process holds it, from the holder's description
            (``"pid 123"``); default :class:`LockHeldError`.
    """

    def __init__(self, path: Path, busy: Callable[[str], Exception] | None = None) -> None:
        self.path = Path(path)
        self._busy = busy if busy is not None else (lambda holder: LockHeldError(self.path, holder))
        self._handle: IO[str] | None = None
        self._wrote_pid = False

    def acquire(self, write_pid: bool = True) -> None:
        """Take the lock or raise ``busy`` naming the holder; write this pid into the file (if ``write_pid``).

        ``write_pid=False`` takes a lock without claiming the file (a run folder about to be moved aside
        keeps whatever its lock file said).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise self._busy(holder) from None
        if write_pid:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        self._handle, self._wrote_pid = handle, write_pid

    def release(self) -> None:
        """Drop the lock; empty the file first if this lock wrote its pid (a lock file that names no one is free)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._wrote_pid:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._handle is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(path: Path) -> str | None:
    """Who holds the lock file ``path`` (``"pid N"``), or ``None`` when it is free or absent (never creates it)."""
    if not path.is_file():
        return None
    with path.open("r", encoding="utf-8") as handle:
        return _holder(handle) if _held_elsewhere(handle) else None


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock file ``path``, without waiting to read its pid."""
    if not path.is_file():
        return False
    with path.open("r", encoding="utf-8") as handle:
        return _held_elsewhere(handle)


def _held_elsewhere(handle: IO[str]) -> bool:
    """Probe with a shared lock: refused means someone holds the exclusive one."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _holder(handle: IO[str]) -> str:
    """``pid N`` from a held lock file (the holder writes it right after locking: wait briefly for it)."""
    for _ in range(20):
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit():
            return f"pid {text}"
        time.sleep(0.05)
    return "another process (pid not yet written)"
