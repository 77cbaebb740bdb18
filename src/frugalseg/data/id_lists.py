"""Files that list ids one per line: case lists (``data.train_list``, ``eval --list``) and ``suggest``'s output.

One reader for both, so that they agree on what a line is: surrounding blanks stripped, blank lines and
``#`` comments skipped, the order kept. Each user checks the ids against its data itself, naming the line.
"""

from __future__ import annotations

from pathlib import Path

from frugalseg.errors import DataError

__all__ = ["read_id_lines"]


def read_id_lines(path: str | Path, what: str, missing_hint: str = "") -> list[tuple[int, str]]:
    """The ids of ``path`` with their 1-based line numbers, in file order.

    Args:
        path: the file.
        what: what the file is, for the errors ("case list", "suggestions file").
        missing_hint: appended to the error for a missing file (how one is made).

    Raises:
        DataError: naming the file: missing, unreadable (not UTF-8 text), or listing no id.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist{missing_hint}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable {what} ({exc})") from exc
    ids = [(number, line.strip()) for number, line in enumerate(lines, start=1)
           if line.strip() and not line.strip().startswith("#")]
    if not ids:
        raise DataError(path, f"{what} is empty: it lists no id")
    return ids
