"""Error types that name the file (and, where known, the item and field) that caused them.

A user who feeds frugalseg a broken file must learn from the message alone which
file is wrong and what is wrong with it; every loader raises one of these
before any output is written.
"""

from __future__ import annotations

from pathlib import Path


class FrugalsegError(Exception):
    """Base class of every error frugalseg raises on purpose (the CLI prints these without a traceback)."""


class DataError(FrugalsegError):
    """A data file or folder cannot be read or is inconsistent.

    Args:
        path: the offending file or folder.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class AnnotationError(DataError):
    """An annotation file is malformed or does not fit the data it annotates.

    Args:
        path: the annotation file.
        problem: what is wrong.
        item: the item id the problem is in, if any.
        field: the field (dotted path inside the item) the problem is in, if any.
    """

    def __init__(self, path: str | Path, problem: str, item: str | None = None, field: str | None = None) -> None:
        self.item = item
        self.field = field
        where = ""
        if item is not None:
            where += f"item {item!r}"
        if field is not None:
            where += (", " if where else "") + f"field {field!r}"
        super().__init__(path, f"{where}: {problem}" if where else problem)


class ConfigError(FrugalsegError):
    """A configuration file or override is invalid (unknown key, bad value)."""


class CheckpointError(FrugalsegError):
    """A checkpoint cannot be loaded safely or does not fit the requested model."""


class OutputExistsError(FrugalsegError):
    """An output already exists and the user did not ask to overwrite or resume it."""

    def __init__(self, path: str | Path, hint: str = "pass --overwrite to replace it") -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} already exists; {hint}")


class MissingExtraError(FrugalsegError):
    """A feature needs an optional extra that is not installed; the message says how to install it."""

    def __init__(self, extra: str, package: str, reason: str = "") -> None:
        self.extra = extra
        detail = f" ({reason})" if reason else ""
        super().__init__(f"this needs the optional package {package!r}{detail}: pip install 'frugalseg[{extra}]'")
