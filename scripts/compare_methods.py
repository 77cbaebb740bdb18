"""Train shipped configs over seeds on ACDC, score each on the validation volumes, print mean ± std over seeds.

The evidence runs of the method issues (PSCV vs. pCE, fp32 vs. bf16, ...) before ``frugalseg bench``
exists to do the whole matrix. Runs go to ``--runs`` (default ``runs/compare``); a run whose
``summary.json`` exists is not trained again, so a killed comparison resumes where it stopped.

Each row is ``label=config[,key=value...]``; every row is trained with every ``--seeds`` seed::

    python scripts/compare_methods.py --data ../shared/data/ACDC --schedule quick --seeds 0 1 2 \\
        --row pce=acdc_pce --row pscv=acdc_pscv --out compare.md

Scores come from ``frugalseg eval`` on ``checkpoints/best.pt`` (selected on the same validation volumes,
as SSL4MIS does on its validation split; this makes the figures optimistic) and on
``checkpoints/last.pt`` (no selection), both reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from frugalseg.cli import main as frugalseg
from frugalseg.files import replace_marked_block

METRICS = ("dice", "hd95", "asd")


def parse_row(text: str) -> tuple[str, str, list[str]]:
    label, _, spec = text.partition("=")
    config, *overrides = spec.split(",")
    if not label or not config:
        raise SystemExit(f"--row {text!r}: expected label=config[,key=value...]")
    return label, config, overrides


def run_one(label: str, config: str, overrides: list[str], seed: int, args: argparse.Namespace) -> dict[str, Any]:
    run = args.runs / f"{label}-s{seed}"
    if not (run / "summary.json").is_file():
        cmd = ["train", config, f"data.root={args.data}", f"schedule={args.schedule}", f"train.seed={seed}",
               *overrides, "--out", str(run), "--no-progress"]
        cmd += ["--resume"] if (run / "checkpoints" / "last.pt").is_file() else ["--overwrite"]
        t0 = time.perf_counter()
        if frugalseg(cmd) != 0:
            raise SystemExit(f"training {label} seed {seed} failed")
        print(f"[{label} s{seed}] trained in {time.perf_counter() - t0:.0f} s", flush=True)
    scores = {}
    for which in ("best", "last"):
        out = run / f"eval_{which}"
        if not (out / "summary.json").is_file():
            rc = frugalseg(["eval", "--checkpoint", str(run / "checkpoints" / f"{which}.pt"), "--data",
                            str(args.data), "--out", str(out), "--overwrite"])
            if rc != 0:
                raise SystemExit(f"evaluating {run} failed")
        scores[which] = json.loads((out / "summary.json").read_text())
    scores["train_seconds"] = json.loads((run / "summary.json").read_text())["train_seconds"]
    return scores


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(results: dict[str, list[dict[str, Any]]], which: str) -> list[str]:
    first = next(iter(results.values()))[0][which]
    classes = list(first["classes"])
    head = ["method", "seeds"] + [f"{m} {c}" for m in METRICS for c in [*classes, "mean"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in results.items():
        cells = [label, str(len(runs))]
        for m in METRICS:
            for c in classes:
                cells.append(mean_std([r[which]["classes"][c][m]["mean"] for r in runs]))
            cells.append(mean_std([r[which]["overall"][m]["mean"] for r in runs]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def provenance(argv: list[str] | None) -> str:
    """Where a table in ``docs/`` came from: date, commit, machine and the command that wrote it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    command = " ".join(["python scripts/compare_methods.py", *(sys.argv[1:] if argv is None else argv)])
    return (f"Written by `scripts/compare_methods.py` on {dt.date.today()} at commit {commit}, "
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
    args = p.parse_args(argv)
    if (args.doc is None) != (args.block is None):
        p.error("--doc and --block go together")
    results: dict[str, list[dict[str, Any]]] = {}
    for text in args.row:
        label, config, overrides = parse_row(text)
        results[label] = [run_one(label, config, overrides, s, args) for s in args.seeds]
    lines = [f"Validation volumes of {args.data}, schedule `{args.schedule}`, seeds {args.seeds}; "
             "mean ± std over seeds of the per-seed mean over volumes (HD95/ASD in pixels).", ""]
    for which in ("best", "last"):
        lines += [f"**{which}.pt**", "", *table(results, which), ""]
    lines.append("Training seconds per run: " + ", ".join(
        f"{k} {statistics.mean(r['train_seconds'] for r in v):.0f}" for k, v in results.items()))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.doc:
        replace_marked_block(args.doc, args.block, provenance(argv) + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
