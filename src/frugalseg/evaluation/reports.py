"""Evaluation reports: one CSV row per volume and class, and a JSON summary, each written atomically.

The CSV is the raw material (every number a table or a figure is built from); the JSON is what a table row
quotes. Both are written to a temporary file in the target folder and renamed into place, so an
interrupted run never leaves half a report, and neither replaces an existing file unless asked.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from frugalseg.errors import OutputExistsError
from frugalseg.evaluation.metrics import METRICS, VolumeResult, class_names
from frugalseg.files import write_text_atomic

__all__ = ["CSV_COLUMNS", "per_volume_rows", "write_per_volume_csv", "write_reports", "write_summary_json"]

CSV_COLUMNS: tuple[str, ...] = ("case_id", "class_index", "class", *METRICS, "pred_empty", "ref_empty", "units")
"""Columns of the per-volume CSV, in order."""



def per_volume_rows(
    results: Sequence[VolumeResult], classes: Mapping[int, str] | Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One dict per (volume, foreground class), keyed by :data:`CSV_COLUMNS`."""
    rows = []
    for r in results:
        names = class_names(classes, r.num_foreground)
        for k, name in enumerate(names):
            row: dict[str, Any] = {"case_id": r.case_id, "class_index": k + 1, "class": name}
            row.update({m: float(r.metric(m)[k]) for m in METRICS})
            row.update({"pred_empty": bool(r.pred_empty[k]), "ref_empty": bool(r.ref_empty[k]), "units": r.units})
            rows.append(row)
    return rows


def write_per_volume_csv(
    results: Sequence[VolumeResult],
    path: str | Path,
    classes: Mapping[int, str] | Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the per-volume, per-class CSV (full float precision, ``repr`` round-trips).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(per_volume_rows(results, classes))
    path = Path(path)
    write_text_atomic(path, buf.getvalue(), overwrite)
    return path


def _json_safe(value: Any) -> Any:  # noqa: ANN401 (any JSON-able value)
    """Replace non-finite floats by ``None``: strict JSON has no NaN or Infinity (none are expected)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_summary_json(summary: Mapping[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """Write a summary (as :func:`frugalseg.evaluation.metrics.summarise` returns it, plus any keys) as JSON.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    write_text_atomic(path, json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n", overwrite)
    return path


def write_reports(
    results: Sequence[VolumeResult],
    summary: Mapping[str, Any],
    csv_path: str | Path,
    json_path: str | Path,
    classes: Mapping[int, str] | Sequence[str] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write the per-volume CSV and the JSON summary; neither is written if either already exists.

    Raises:
        OutputExistsError: one of the paths exists and ``overwrite`` is false (checked before writing).
    """
    csv_path, json_path = Path(csv_path), Path(json_path)
    if not overwrite:
        for p in (csv_path, json_path):
            if p.exists():
                raise OutputExistsError(p)
    return (write_per_volume_csv(results, csv_path, classes, overwrite=overwrite),
            write_summary_json(summary, json_path, overwrite=overwrite))
