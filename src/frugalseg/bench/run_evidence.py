"""What the scripts that re-read the bench's kept run folders share: their arguments, their runs, their block.

Some evidence needs more than a record holds: both networks of a checkpoint (``scripts/teacher_student.py``),
the predicted labels of every validation voxel (``scripts/class_confusion.py``). Such a script reads the run
folder each record names, on the machine that trained it, and must never read a folder that a later training of
the same label has reused; it then writes one marked block of a page, headed by the command that rebuilds it.

Run folders do not outlive the machine that trained them; records do. So what a script measured in a run
folder is kept beside the records, committed with them (:func:`measured_runs`): a later session rebuilds the
block from committed files, and adding a seed measures only that seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from frugalseg.bench.records import RunRecord, read_record, row_record_dirs
from frugalseg.files import replace_marked_block, write_text_atomic

__all__ = ["evidence_parser", "evidence_path", "measured_runs", "write_evidence", "write_evidence_block"]

EVIDENCE_FOLDER = "evidence"
"""Beside the records folder (``docs/results/evidence`` for ``docs/results/runs``): ``<kind>/<label>-s<seed>.json``."""

Measure = Callable[[RunRecord, Path], dict[str, Any]]
"""What a script measures in the run folder of a record (it checks the result against the record itself)."""


def evidence_parser(description: str, block: str, rows: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The arguments every such script takes; ``rows``: the default row labels (none: ``--rows`` is required)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help="the data folder the runs were validated on")
    p.add_argument("--page", type=Path, required=True, help=f"markdown page with a <!-- {block} --> block")
    p.add_argument("--records", type=Path, default=Path("docs/results/runs"))
    p.add_argument("--rows", nargs="+", required=not rows, default=list(rows) or None,
                   help="bench row labels, in the table's order")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to a training beside)")
    return p


def write_evidence_block(script: str, block: str, args: argparse.Namespace, text: str) -> None:
    """Replace ``block`` of ``args.page`` with ``text`` headed by the command that rebuilds it."""
    command = f"python scripts/{script} " + shlex.join(
        ["--data", args.data, "--page", str(args.page), "--rows", *args.rows])
    replace_marked_block(args.page, block, f"Written by `{command}`. {text}")
    print(f"wrote the {block} block of {args.page}")


def _stamp(record: RunRecord) -> str:
    """The sha256 of the record's ``record.json``: a record written again (a row trained again) changes it."""
    return hashlib.sha256((record.path / "record.json").read_bytes()).hexdigest()


def evidence_path(records: Path, kind: str, record: RunRecord) -> Path:
    return Path(records).parent / EVIDENCE_FOLDER / kind / f"{record.path.name}.json"


def write_evidence(records: Path, kind: str, record: RunRecord, measured: dict[str, Any]) -> Path:
    """Keep ``measured`` for ``record``, stamped with it, where :func:`measured_runs` reads it."""
    path = evidence_path(records, kind, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"record_sha256": _stamp(record), "measured": measured}, indent=1, sort_keys=True) + "\n"
    write_text_atomic(path, text, overwrite=True)
    return path


def _kept(records: Path, kind: str, record: RunRecord) -> dict[str, Any] | None:
    path = evidence_path(records, kind, record)
    if not path.is_file():
        return None
    kept = json.loads(path.read_text(encoding="utf-8"))
    return kept["measured"] if kept.get("record_sha256") == _stamp(record) else None


def measured_runs(records: Path, rows: Sequence[str], kind: str,
                  measure: Measure) -> Iterator[tuple[str, RunRecord, dict[str, Any]]]:
    """(row, record, what was measured) for every recorded seed of ``rows``, in row and seed order.

    Read from the kept evidence when it was made from this very record (same ``record.json``); else measured in
    the run folder the record names (which must still hold that run: :meth:`RunRecord.same_run_folder`) and kept.
    """
    for row in rows:
        for path in row_record_dirs(records, row):
            record = read_record(path)
            measured = _kept(records, kind, record)
            if measured is None:
                run = record.same_run_folder()
                if run is None:
                    raise SystemExit(f"{record.path}: nothing of it is kept in {evidence_path(records, kind, record)}"
                                     f" and its run folder {record.run} is gone or holds another run; train the "
                                     "row again")
                measured = measure(record, run)
                write_evidence(records, kind, record, measured)
            yield row, record, measured
