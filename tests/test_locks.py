"""The one-writer lock shared by run folders and annotation files (``frugalseg.locks``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from frugalseg.locks import FileLock, LockHeldError, is_locked, lock_holder


def test_a_second_lock_is_refused_naming_the_holder_and_a_released_lock_names_no_one(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    assert lock_holder(path) is None and not is_locked(path) and not path.exists()  # probing creates nothing
    with FileLock(path) as first:
        assert first.held and path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockHeldError, match=f"{path} is held by pid {os.getpid()}"):
            FileLock(path).acquire()
        with pytest.raises(KeyError, match=f"pid {os.getpid()}"):
            FileLock(path, busy=KeyError).acquire()  # each user says what its refusal says
    assert not first.held and path.read_text() == ""
    assert lock_holder(path) is None and not is_locked(path)


def test_a_lock_taken_without_the_pid_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "x.lock"
    path.write_text("12345\n")
    lock = FileLock(path)
    lock.acquire(write_pid=False)
    lock.release()
    assert path.read_text() == "12345\n"


def test_another_process_is_seen_and_its_death_frees_the_lock(tmp_path):
    path = tmp_path / "x.lock"
    code = (f"from frugalseg.locks import FileLock; FileLock(__import__('pathlib').Path({str(path)!r})).acquire(); "
            "print('locked', flush=True); import time; time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_locked(path) and lock_holder(path) == f"pid {holder.pid}"
    finally:
        holder.kill()
        holder.wait()
    assert not is_locked(path)
    with FileLock(path):
        pass
