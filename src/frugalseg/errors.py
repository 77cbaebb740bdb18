"""Error types that name the file (and, where known, the item and field) that caused them.

A user who feeds frugalseg a broken file must learn from the message alone which
file is wrong and what is wrong with it; every loader raises one of these
before any output is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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


def describe_validation(exc: ValidationError, prefix: Sequence[str] = ()) -> str:
    """pydantic's errors as one line: ``train.iteratons: unknown key; train.lr: Input should be ...``.

    Every schema of frugalseg (configs, method options, budgets, the bench's YAML) reports a bad key this way.
    A key that is not printable (YAML allows a newline in a key) is shown as its ``repr``, so the message stays
    on one line, as a :class:`FrugalsegError`'s must.
    """
    lines = []
    for err in exc.errors():
        parts = [*prefix, *(str(p) for p in err["loc"])]
        loc = ".".join(p if p.isprintable() else repr(p) for p in parts) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else " ".join(err["msg"].split())
        lines.append(f"{loc}: {msg.removeprefix('Value error, ')}")
    return "; ".join(lines)
