"""File-format sources, found by name (``data.format``) or recognised from a folder's contents."""

from __future__ import annotations

from pathlib import Path

from frugalseg.data.sources import acdc_h5, nnunet_raw, png_folder  # noqa: F401  (registers the sources)
from frugalseg.data.sources.base import SOURCES, Source, register_source
from frugalseg.errors import DataError

__all__ = ["SOURCES", "Source", "register_source", "open_source", "detect_format"]


def detect_format(root: str | Path) -> str:
    """Name of the source whose layout ``root`` holds; :class:`DataError` if none or the folder is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder does not exist")
    found = [name for name, cls in SOURCES.items() if cls.detect(root)]
    if not found:
        raise DataError(root, f"not a recognised data layout (known: {', '.join(sorted(SOURCES))})")
    return found[0]


def open_source(root: str | Path, format: str | None = None) -> Source:  # noqa: A002
    """Open ``root`` with the named source, or with the one recognised from its contents."""
    name = format or detect_format(root)
    if name not in SOURCES:
        raise DataError(Path(root), f"unknown data format {name!r} (known: {', '.join(sorted(SOURCES))})")
    return SOURCES[name](root)
