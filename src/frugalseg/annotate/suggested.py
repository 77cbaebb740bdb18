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
from frugalseg.data.id_lists import read_id_lines
from frugalseg.errors import DataError

__all__ = ["read_suggestions"]


def read_suggestions(path: str | Path, catalog: Catalog) -> list[str]:
    """The item ids of ``path`` in its order (blank lines and ``#`` comments skipped), each a slice of ``catalog``.

    Raises:
        DataError: naming the file (and the line): missing or unreadable, an id the data does not have, an id
            listed twice, or no id at all.
    """
    path = Path(path)
    ids: list[str] = []
    seen: set[str] = set()
    for number, item_id in read_id_lines(path, "suggestions file", " (frugalseg suggest --out writes one)"):
        if item_id not in catalog:
            raise DataError(path, f"line {number}: {item_id!r} is not a training slice of {catalog.data} "
                                  "(suggestions made for other data?)")
        if item_id in seen:
            raise DataError(path, f"line {number}: {item_id!r} is listed twice")
        seen.add(item_id)
        ids.append(item_id)
    return ids
