"""The annotation file behind the page: every change validated, saved atomically, logged, undoable.

A change is acknowledged to the page only after the whole file has been rewritten with
:func:`~frugalseg.data.annotations.save_annotations` (a temporary file, synced, renamed over the
target), so a server killed at any moment after a reply has the action on disk; a change that breaks
a rule of the format is refused before anything is written and leaves the file as it was.

Undo and redo work on the changes of this server's lifetime (not across restarts): each change
remembers the item before and after it. The timing log beside the file (``<file>.timing.jsonl``,
one JSON object per line) records when each action happened and of which kind, for
:mod:`frugalseg.annotate.fit_cost`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from frugalseg.annotate.catalog import Catalog
from frugalseg.annotate.lock import annotation_lock
from frugalseg.data.annotations import (
    AnnotationFile,
    Box,
    Item,
    Point,
    Scribble,
    check_annotations,
    load_annotations,
    save_annotations,
)
from frugalseg.errors import AnnotationError

__all__ = ["AnnotationStore", "Change", "NothingToDo", "UnknownItem", "timing_log_path"]

Kind = Literal["points", "scribbles", "boxes"]
Mark = Point | Scribble | Box


class UnknownItem(KeyError):
    """An item id that is not an item of the data."""


class NothingToDo(Exception):
    """Undo with nothing done, redo with nothing undone."""


@dataclass(frozen=True)
class Change:
    """One change of one item: what it was before and after (``None``: absent from the file)."""

    item_id: str
    action: str
    before: Item | None
    after: Item | None


def timing_log_path(path: Path) -> Path:
    """``annotations.json`` → ``annotations.json.timing.jsonl``."""
    return path.with_name(path.name + ".timing.jsonl")


def _action_of(kind: Kind) -> str:
    return {"points": "point", "scribbles": "scribble", "boxes": "box"}[kind]


class AnnotationStore:
    """The file ``path`` over the items of ``catalog``, locked for this process while open.

    Opening resumes an existing file (checked against the data: its classes and every item and
    coordinate) or writes a new, empty one.

    Args:
        path: the annotation file (``--out``).
        catalog: the data's items and classes.

    Raises:
        LockedError: another process has the file open.
        AnnotationError: the existing file is broken, has other classes, or does not fit the data.
    """

    def __init__(self, path: str | Path, catalog: Catalog) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self.log_path = timing_log_path(self.path)
        self._lock = annotation_lock(self.path)
        self._mutex = threading.Lock()
        self._done: list[Change] = []
        self._undone: list[Change] = []
        self._session = uuid.uuid4().hex[:12]
        self._lock.acquire()
        try:
            self.ann = self._open()
        except BaseException:
            self._lock.release()
            raise
        self._log("start", None)

    def _open(self) -> AnnotationFile:
        classes = self.catalog.class_names()
        if self.path.exists():
            ann = load_annotations(self.path, grids=self.catalog.grids())
            if ann.classes != classes:
                raise AnnotationError(self.path, f"classes {ann.classes} differ from the data's {classes}; "
                                      "pass another --out", field="classes")
            return ann
        ann = AnnotationFile(classes=classes, provenance={"annotated_with": "frugalseg annotate",
                                                          "data": str(self.catalog.data)})
        save_annotations(ann, self.path)
        return ann

    def close(self) -> None:
        """Log the end of the session and release the lock."""
        if self._lock.held:
            self._log("stop", None)
            self._lock.release()

    # ------------------------------------------------------------------------------------ reading

    def item(self, item_id: str) -> Item:
        """What the file holds for ``item_id`` (an empty item when nothing)."""
        self._known(item_id)
        return self.ann.items.get(item_id) or Item()

    def _known(self, item_id: str) -> None:
        if item_id not in self.catalog:
            raise UnknownItem(item_id)

    # ------------------------------------------------------------------------------------ changing

    def add(self, item_id: str, kind: Kind, mark: Mark) -> Change:
        """Append a point, scribble or box to an item (validated against the item's grid and the classes)."""
        self._known(item_id)
        with self._mutex:
            before = self.ann.items.get(item_id)
            base = before or Item()
            after = base.model_copy(update={kind: [*getattr(base, kind), mark]})
            return self._apply(Change(item_id, _action_of(kind), before, after), {"class": mark.class_})

    def set_tags(self, item_id: str, tags: list[int] | None) -> Change:
        """Set an item's image-level tags: classes present (``[]``: nothing here; ``None``: not known)."""
        self._known(item_id)
        with self._mutex:
            before = self.ann.items.get(item_id)
            after = (before or Item()).model_copy(update={"tags": None if tags is None else sorted(tags)})
            action = "untag" if tags is None else ("empty" if not tags else "tag")
            return self._apply(Change(item_id, action, before, after), {"tags": tags})

    def undo(self) -> Change:
        """Restore the item the last change touched; :class:`NothingToDo` when there is none."""
        return self._replay(self._done, self._undone, "undo")

    def redo(self) -> Change:
        """Apply again the last undone change; :class:`NothingToDo` when there is none."""
        return self._replay(self._undone, self._done, "redo")

    def _replay(self, source: list[Change], target: list[Change], action: Literal["undo", "redo"]) -> Change:
        with self._mutex:
            if not source:
                raise NothingToDo(f"nothing to {action}")
            last = source[-1]
            self._write(last.item_id, last.before if action == "undo" else last.after)
            target.append(source.pop())
            self._log(action, last.item_id, {"change": last.action})
            return last

    def _apply(self, change: Change, detail: dict[str, Any]) -> Change:
        after = change.after
        if after is not None:
            single = AnnotationFile(classes=self.ann.classes, items={change.item_id: after})
            check_annotations(single, {change.item_id: self.catalog.grid(change.item_id)}, self.path)
        self._write(change.item_id, after)
        self._done.append(change)
        self._undone.clear()
        self._log(change.action, change.item_id, detail)
        return change

    def _write(self, item_id: str, item: Item | None) -> None:
        """Save the file with ``item`` in place (``None`` or an empty item: removed); memory follows disk."""
        items = dict(self.ann.items)
        if item is None or item.is_empty:
            items.pop(item_id, None)
        else:
            items[item_id] = item
        ann = self.ann.model_copy(update={"items": items})
        save_annotations(ann, self.path, overwrite=True)
        self.ann = ann

    # ------------------------------------------------------------------------------------ timing log

    def _log(self, action: str, item_id: str | None, detail: dict[str, Any] | None = None) -> None:
        now = time.time()
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
            "t": round(now, 3), "session": self._session, "action": action,
        }
        if item_id is not None:
            record["item"] = item_id
        record.update(detail or {})
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
