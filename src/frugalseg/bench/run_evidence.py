"""What the scripts that re-read the bench's kept run folders share: their arguments, their runs, their block.

Some evidence needs more than a record holds: both networks of a checkpoint (``scripts/teacher_student.py``),
the predicted labels of every validation voxel (``scripts/class_confusion.py``). Such a script reads the run
folder each record names, on the machine that trained it, and must never read a folder that a later training of
the same label has reused; it then writes one marked block of a page, headed by the command that rebuilds it.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path

from frugalseg.bench.records import RunRecord, read_record, row_record_dirs
from frugalseg.files import replace_marked_block

__all__ = ["evidence_parser", "recorded_runs", "write_evidence_block"]


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


def recorded_runs(records: Path, rows: Sequence[str]) -> Iterator[tuple[str, RunRecord, Path]]:
    """(row, record, run folder) for every recorded seed of ``rows``, in row and seed order.

    Stops (``SystemExit`` naming the record) at a record whose run folder is gone or holds another run
    (:meth:`RunRecord.same_run_folder`): the evidence would describe a run the record did not score.
    """
    for row in rows:
        for path in row_record_dirs(records, row):
            record = read_record(path)
            run = record.same_run_folder()
            if run is None:
                raise SystemExit(f"{record.path}: its run folder {record.run} is gone or holds another run; "
                                 "train the row again")
            yield row, record, run


def write_evidence_block(script: str, block: str, args: argparse.Namespace, text: str) -> None:
    """Replace ``block`` of ``args.page`` with ``text`` headed by the command that rebuilds it."""
    command = f"python scripts/{script} " + shlex.join(
        ["--data", args.data, "--page", str(args.page), "--rows", *args.rows])
    replace_marked_block(args.page, block, f"Written by `{command}`. {text}")
    print(f"wrote the {block} block of {args.page}")
