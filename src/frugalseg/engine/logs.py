"""Run logs: a CSV file a spreadsheet can open and TensorBoard event files, written by rank 0 only."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path


class RunLogger:
    """Append scalar rows to ``<run>/log.csv`` (one row per logged iteration) and to TensorBoard ``<run>/tb``.

    The CSV's columns are fixed by the first row of each kind (``train`` or ``val``) so that
    a resumed run appends to the same file without rewriting it. A row with a column the file lacks
    (a multi-stage method's later stage logs other losses) widens the header once: the file is rewritten
    with the new columns appended, empty in the earlier rows.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self._writer = None
        self._fields: dict[str, list[str]] = {}  # each CSV's header, once read or written
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(run_dir / "tb"))

    def log(self, kind: str, iteration: int, values: Mapping[str, float]) -> None:
        """Write one row of ``kind`` (``train`` / ``val``) at ``iteration``."""
        if not self.enabled:
            return
        path = self.run_dir / f"{kind}_log.csv"
        row = {"iteration": iteration, **{k: float(v) for k, v in values.items()}}
        new = not path.exists()
        if new:
            fields = list(row)
        else:
            fields = self._fields.get(kind) or self._read_header(path)  # the file is read once per run, not per row
            added = [k for k in row if k not in fields]
            if added:
                fields = self._widen(path, fields + added)
        self._fields[kind] = fields
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(f"{kind}/{key}", float(value), iteration)

    @staticmethod
    def _read_header(path: Path) -> list[str]:
        with path.open(newline="") as fh:
            return next(csv.reader(fh))

    @staticmethod
    def _widen(path: Path, fields: list[str]) -> list[str]:
        """Rewrite ``path`` under the header ``fields`` (a superset of its own); earlier rows get empty cells."""
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        return fields

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (a resumed run re-does them; keeps the CSV free of duplicates)."""
        if not self.enabled:
            return
        for path in self.run_dir.glob("*_log.csv"):
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            if not rows:
                continue
            kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= iteration]
            with path.open("w", newline="") as fh:
                csv.writer(fh).writerows(kept)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
