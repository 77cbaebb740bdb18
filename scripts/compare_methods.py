"""Train shipped configs over seeds on ACDC, score each on the validation volumes, print mean ± std over seeds.

The evidence runs of the method issues (PSCV vs. pCE, fp32 vs. bf16, ...): any rows, any runs folder.
``frugalseg bench`` runs the fixed benchmark matrix with the same core (``frugalseg.bench``): rows,
train-or-skip, evaluation, records and tables live there; this script only parses its arguments and prints.
Runs go to ``--runs`` (default ``runs/compare``) as ``<label>-s<seed>``; a run whose ``summary.json``
exists is not trained again, so a killed comparison resumes where it stopped (a finished run trained
with another config than its row is reused with a warning, and not recorded).

Records (``frugalseg.bench.records``): each run, once trained and scored, is copied into a small record
``<records>/<label>-s<seed>/`` (config, training summary, evaluations of best.pt and last.pt, annotation
counts; tens of KB) meant to be committed, because ``runs/`` is not and a session's machine is wiped. A
row x seed with a record is finished even if its run folder is gone: it is not trained again and the
tables are read from the record, so a comparison that outlasts a session goes on in the next one from its
committed records. A record of another config than its row is refused (delete it to train the row again).
A finished run folder without a record (trained before records existed) is recorded when reached.

- ``--records DIR``: where the records go;
- default with ``--doc PAGE``: ``<folder of PAGE>/records/<PAGE's name without .md>/`` (for
  ``--doc docs/methods/mlds.md``: ``docs/methods/records/mlds/``), committed with the page;
- neither: no records (the runs live in ``--runs`` only, as before; the script says so on stderr).

Each row is ``label=config[,key=value...]``; every row is trained with every ``--seeds`` seed::

    python scripts/compare_methods.py --data ../shared/data/ACDC --schedule quick --seeds 0 1 2 \\
        --row pce=acdc_pce --row pscv=acdc_pscv --doc docs/methods/pscv.md --block pscv_vs_pce

``--jobs N`` trains the runs that are not finished N at a time, each in its own process with cpus/N
threads (``frugalseg bench --jobs``'s scheduler, :mod:`frugalseg.bench.parallel`; every seed of a row
before the next row), then tabulates as without it. On the 2-core CPU, ``--jobs 2`` trains 1.5 times as
many iterations per second as one process. A run of another config than its row fails its job there
(``--jobs 1`` reuses it with a warning).

Scores come from ``frugalseg eval`` on ``checkpoints/best.pt`` (selected on the same validation volumes,
as SSL4MIS does on its validation split; this makes the figures optimistic) and on
``checkpoints/last.pt`` (no selection), both reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from frugalseg.bench.matrix import Row, parse_row
from frugalseg.bench.provenance import git_commit
from frugalseg.bench.runner import RunRecord, run_row_seed
from frugalseg.bench.tables import metrics_table
from frugalseg.errors import FrugalsegError
from frugalseg.files import replace_marked_block


def run_one(row: Row, seed: int, args: argparse.Namespace) -> RunRecord:
    try:
        return run_row_seed(row, seed, args.data, args.runs, args.schedule, strict=False, records=args.records)
    except FrugalsegError as exc:
        raise SystemExit(f"{row.label} seed {seed}: {exc}") from exc


def train_children(rows: list[Row], args: argparse.Namespace) -> None:
    """Train every unfinished row x seed, ``args.jobs`` at a time in child processes (``--jobs``).

    A run counts as finished with its record or, without records, with its ``summary.json`` (scoring it is
    left to the tables' pass); the children score and record what they train.
    """
    from frugalseg.bench.parallel import gpu_devices, train_side_by_side, unfinished_jobs

    try:
        devices = gpu_devices(args.jobs)
    except FrugalsegError as exc:
        raise SystemExit(f"--jobs: {exc}") from exc
    jobs = unfinished_jobs(rows, args.seeds, str(args.data), args.runs, args.schedule, records=args.records)
    _, failures = train_side_by_side(jobs, args.jobs, devices)
    if failures:
        raise SystemExit("compare_methods: runs failed:\n" + "\n".join(f.describe() for f in failures))


def default_records(doc: Path | None) -> Path | None:
    """``<folder of doc>/records/<doc stem>/``: the records beside the page they feed; ``None`` without a page."""
    return None if doc is None else doc.parent / "records" / doc.stem


def provenance(argv: list[str] | None) -> str:
    """Where a table in ``docs/`` came from: date, commit, machine and the command that wrote it."""
    command = " ".join(["python scripts/compare_methods.py", *(sys.argv[1:] if argv is None else argv)])
    return (f"Written by `scripts/compare_methods.py` on {dt.date.today()} at commit {git_commit()}, "
            f"{platform.machine()} CPU with {os.cpu_count()} cores, torch {torch.__version__}:\n\n```\n{command}\n```")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--row", action="append", required=True, help="label=config[,key=value...]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--schedule", default="quick")
    p.add_argument("--runs", type=Path, default=Path("runs/compare"))
    p.add_argument("--out", type=Path, help="also write the Markdown tables here")
    p.add_argument("--doc", type=Path, help="also put the tables into this Markdown page, in the block --block")
    p.add_argument("--block", help="name of the <!-- name --> block of --doc to replace")
    p.add_argument("--records", type=Path,
                   help="folder of the runs' records, to commit (default with --doc PAGE: "
                        "<PAGE's folder>/records/<PAGE's stem>/; else none)")
    p.add_argument("--jobs", type=int, default=1,
                   help="train up to N runs side by side, each in a child process with cpus/N threads")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs: give 1 or more")
    if (args.doc is None) != (args.block is None):
        p.error("--doc and --block go together")
    if args.records is None:
        args.records = default_records(args.doc)
    if args.records is None:
        print("compare_methods: no --records (nor --doc): finished runs are kept in --runs only, which a new "
              "session does not have", file=sys.stderr)
    try:
        rows = [parse_row(text) for text in args.row]
    except FrugalsegError as exc:
        raise SystemExit(f"--row: {exc}") from exc
    if args.jobs > 1:
        train_children(rows, args)
    results = {row.label: [run_one(row, s, args) for s in args.seeds] for row in rows}
    lines = [f"Validation volumes of {args.data}, schedule `{args.schedule}`, seeds {args.seeds}; "
             "mean ± std over seeds of the per-seed mean over volumes (HD95/ASD in pixels).", ""]
    for which in ("best", "last"):
        table = metrics_table({label: [r.summaries[which] for r in runs] for label, runs in results.items()})
        lines += [f"**{which}.pt**", "", *table, ""]
    if args.records is not None:
        lines += [f"Records of these runs: `{args.records.as_posix()}`.", ""]
    lines.append("Training seconds per run: " + ", ".join(
        f"{k} {statistics.mean(r.train_seconds for r in v):.0f}" for k, v in results.items()))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.doc:
        replace_marked_block(args.doc, args.block, provenance(argv) + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
