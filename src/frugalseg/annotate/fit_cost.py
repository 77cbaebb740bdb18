"""Fit a cost model (``frugalseg bench --cost-model``) from the timing log the annotation page keeps.

Usage::

    python -m frugalseg.annotate.fit_cost annotations.json.timing.jsonl --out my_costs.yaml

The time an action took is the gap since the action before it, in the same server session, on the
same slice. A gap across a change of slice (or the first action of a session) also holds the
scrolling to that slice: it is not counted for the action's kind but, less that kind's median, as
``slice_overhead``. Gaps longer than ``--max-gap`` seconds are pauses and are dropped. Each kind's
``seconds`` is the median of its gaps and ``low``/``high`` their quartiles; a kind with fewer than
``--min-samples`` gaps, and ``mask_structure`` (the page draws no masks), keep the base model's
entry. Log kinds: ``point`` → ``click``, ``box`` → ``box``, ``scribble`` → ``scribble``, ``tag``
and ``empty`` (one image-level decision each) → ``tag``; undo and redo are not costed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from frugalseg.bench.cost import CostEntry, CostModel, load_cost_model
from frugalseg.errors import DataError, FrugalsegError
from frugalseg.files import write_text_atomic

__all__ = ["Gaps", "fit_cost_model", "log_gaps", "main", "read_log"]

COSTED = {"point": "click", "box": "box", "scribble": "scribble", "tag": "tag", "empty": "tag"}


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's records; :class:`DataError` naming the file and line of a broken one."""
    if not path.is_file():
        raise DataError(path, "timing log does not exist")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            ok = isinstance(record, dict) and isinstance(record.get("t"), (int, float)) and \
                isinstance(record.get("session"), str) and isinstance(record.get("action"), str)
        except ValueError:
            ok = False
        if not ok:
            raise DataError(path, f"line {n}: not a timing record (a JSON object with t, session and action)")
        records.append(record)
    return records


@dataclass
class Gaps:
    """Seconds per cost-model kind for actions on the slice already open, and per slice change."""

    within: dict[str, list[float]]
    first_on_slice: list[tuple[str, float]]
    paused: int = 0


def log_gaps(records: Sequence[dict[str, Any]], max_gap: float) -> Gaps:
    """Split the log into per-kind gaps, slice-change gaps and pauses (see the module docstring)."""
    gaps = Gaps({kind: [] for kind in set(COSTED.values())}, [])
    sessions: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        sessions.setdefault(str(r["session"]), []).append(r)
    for session in sessions.values():
        session.sort(key=lambda r: float(r["t"]))
        for prev, cur in zip(session, session[1:]):
            kind = COSTED.get(str(cur["action"]))
            if kind is None:
                continue
            gap = float(cur["t"]) - float(prev["t"])
            if gap > max_gap:
                gaps.paused += 1
            elif prev.get("item") is not None and prev.get("item") == cur.get("item"):
                gaps.within[kind].append(gap)
            else:
                gaps.first_on_slice.append((kind, gap))
    return gaps


def _entry(samples: Sequence[float], unit: str, rests_on: str) -> CostEntry:
    low, mid, high = (round(float(v), 2) for v in np.percentile(samples, [25, 50, 75]))
    return CostEntry(seconds=mid, low=low, high=high, unit=unit, rests_on=rests_on)


def fit_cost_model(records: Sequence[dict[str, Any]], base: CostModel, source: str, max_gap: float = 120.0,
                   min_samples: int = 3) -> tuple[CostModel, dict[str, int]]:
    """The base model with each kind the log measured often enough replaced by the log's figures.

    Returns:
        The model, and how many gaps each fitted kind rests on.
    """
    gaps = log_gaps(records, max_gap)
    entries = base.model_dump()
    used: dict[str, int] = {}
    how = f"median of gaps between actions, quartiles as low/high, gaps over {max_gap:g} s dropped as pauses"
    for kind, samples in sorted(gaps.within.items()):
        if len(samples) >= min_samples:
            entries[kind] = _entry(samples, entries[kind]["unit"],
                                   f"{len(samples)} timed actions in {source} ({how})")
            used[kind] = len(samples)
    medians = {k: float(np.median(v)) for k, v in gaps.within.items() if v}
    overheads = [max(0.0, gap - medians[kind]) for kind, gap in gaps.first_on_slice if kind in medians]
    if len(overheads) >= min_samples:
        entries["slice_overhead"] = _entry(overheads, entries["slice_overhead"]["unit"],
                                           f"{len(overheads)} first actions on a slice in {source}, less their "
                                           f"kind's median ({how})")
        used["slice_overhead"] = len(overheads)
    return CostModel.model_validate(entries), used


def _dump(model: CostModel, log: Path, used: dict[str, int]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kept = [k for k in CostModel.model_fields if k not in used]
    head = (f"# Cost model fitted by `python -m frugalseg.annotate.fit_cost` from {log} on {stamp}.\n"
            f"# Fitted: {', '.join(f'{k} ({n} gaps)' for k, n in used.items()) or 'nothing'}; "
            f"kept from the base model: {', '.join(kept) or 'nothing'}.\n"
            "# Use it with: frugalseg bench --cost-model THIS_FILE\n")
    return head + yaml.safe_dump(model.model_dump(), sort_keys=False, allow_unicode=True, width=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frugalseg.annotate.fit_cost", description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="timing log written by frugalseg annotate (<file>.timing.jsonl)")
    parser.add_argument("--out", required=True, type=Path, help="cost model to write (YAML)")
    parser.add_argument("--base", type=Path, help="model whose entries the log does not measure are kept "
                        "(default: the shipped cost_model.yaml)")
    parser.add_argument("--max-gap", type=float, default=120.0, help="longer gaps are pauses (default 120 s)")
    parser.add_argument("--min-samples", type=int, default=3, help="fewer gaps keep the base entry (default 3)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        model, used = fit_cost_model(read_log(args.log), load_cost_model(args.base), args.log.name, args.max_gap,
                                     args.min_samples)
        write_text_atomic(args.out, _dump(model, args.log, used), overwrite=args.overwrite)
    except FrugalsegError as exc:
        print(f"fit_cost: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: fitted {', '.join(used) or 'nothing (too few timed actions)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
