"""Where a generated table came from: date, commit and machine, for the header of every page a script writes.

A number in ``docs/`` is only worth as much as what can be said about how it was made; these strings go at
the top of ``docs/results.md`` (``frugalseg bench``), of the method pages' blocks (``frugalseg bench --row
--doc``) and of the ``benchmarks/`` blocks.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import torch

__all__ = ["device_name", "git_commit", "machine_description", "utc_now"]


def git_commit(cwd: str | Path | None = None) -> str:
    """Short commit of the repository at ``cwd`` (default: the one holding this frugalseg's code, wherever the
    command runs from), with ``+ uncommitted changes in src/`` when tracked sources differ from it;
    ``unknown`` for an installed package outside a repository."""
    cwd = Path(__file__).resolve().parent if cwd is None else cwd
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=cwd).stdout.strip()
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                             cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               capture_output=True, text=True, check=True, cwd=top).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + uncommitted changes in src/" if dirty else commit


def device_name(device: str | None = None) -> str:
    """``cpu`` or ``cuda (<GPU name>)``: where training and evaluation run by default."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type


def machine_description(device: str | None = None) -> str:
    """``Linux x86_64, 2 CPUs, torch 2.13.0+cpu, device cpu (2 threads)``."""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"device {device_name(device)} ({torch.get_num_threads()} threads)")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
