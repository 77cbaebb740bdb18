"""``frugalseg annotate --suggested FILE``: the slices ``frugalseg suggest`` ranked, in the order to annotate them.

``suggest`` writes item ids one per line, best first. The page keeps its volume-by-volume order (paging
through a volume needs neighbouring slices side by side) and adds the suggestions as a queue: it opens at the
first suggested slice not yet annotated, a key steps to the next one, and the slice list marks each with its
rank. A file made for other data names items this data does not have, and is refused before the server
starts, naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path

from frugalseg.annotate.catalog import Catalog
from frugalseg.errors import DataError

__all__ = ["read_suggestions"]


def read_suggestions(path: str | Path, catalog: Catalog) -> list[str]:
    """The item ids of ``path`` in its order (blank lines and ``#`` comments skipped), each a slice of ``catalog``.

    Raises:
        DataError: naming the file (and the line): missing or unreadable, an id the data does not have, an id
            listed twice, or no id at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "suggestions file does not exist (frugalseg suggest --out writes one)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable suggestions file ({exc})") from exc
    ids: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        item_id = line.strip()
        if not item_id or item_id.startswith("#"):
            continue
        if item_id not in catalog:
            raise DataError(path, f"line {number}: {item_id!r} is not a training slice of {catalog.data} "
                                  "(suggestions made for other data?)")
        if item_id in seen:
            raise DataError(path, f"line {number}: {item_id!r} is listed twice")
        seen.add(item_id)
        ids.append(item_id)
    if not ids:
        raise DataError(path, "suggestions file lists no item")
    return ids
