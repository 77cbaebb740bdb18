"""The EMA teacher against its own student, in the bench's mean-teacher runs: a paired table.

On the #21 schedule the mean teacher ends under its supervised baseline (``docs/performance.md``, "Why the
mean teacher does not beat supervised on this schedule"). After the consistency term and the halved masked
batch, what is left of the gap lies either in the network the bench evaluates (the EMA teacher, where the
baseline evaluates the network it trains) or in the unlabelled half of each batch passing through the
student's batch norm. Every bench run's ``last.pt`` holds both networks, so the first cause is measured here
without training anything: each network is scored on the validation volumes exactly as ``frugalseg eval
--network`` scores it, and the pair is compared seed by seed.

For each recorded seed of each row the script

- unless its scores are kept already, finds the run folder its record names and checks that the folder
  still holds that run (same ``config.json``); a run folder that is gone or holds another run stops the script;
- evaluates ``teacher`` and ``student`` of ``checkpoints/last.pt`` into ``eval_last_<network>/`` of the
  run folder, once (a later call reads those summaries);
- checks that the teacher's score is the record's ``last.pt`` score, which the bench computed the same way;
- keeps both scores beside the records, committed with them (``docs/results/evidence/teacher_student/``,
  ``frugalseg.bench.run_evidence``): a later call, on any machine, reads them instead of the run folder;

then writes the ``<!-- teacher_student -->`` block of the page: per row, mean ± std over seeds of each
network's mean Dice and of the paired difference (student minus teacher), and each seed's difference.

    python scripts/teacher_student.py --data ../shared/data/ACDC --page docs/performance.md \\
        [--records docs/results/runs] [--rows mean_teacher7 mean_teacher3 mean_teacher7_c0] [--threads 1]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from frugalseg.bench.records import RunRecord
from frugalseg.bench.run_evidence import evidence_parser, measured_runs, write_evidence_block
from frugalseg.bench.tables import aggregate, metric_value

NETWORKS: tuple[str, ...] = ("teacher", "student")
"""The two networks of a mean-teacher checkpoint, in the table's column order."""

ROWS: tuple[str, ...] = ("mean_teacher7", "mean_teacher3", "mean_teacher7_c0")
"""The bench's mean-teacher rows: both budgets, and masks7 with the consistency weight at 0."""

AGREEMENT = 1e-4
"""How far the teacher's score may be from the record's ``last.pt`` score (the same evaluation, run again)."""


@dataclass(frozen=True)
class Pair:
    """One seed of one row: the mean validation Dice of each network of its ``last.pt``."""

    row: str
    seed: int
    dice: dict[str, float]

    @property
    def difference(self) -> float:
        """Student minus teacher."""
        return self.dice["student"] - self.dice["teacher"]


def network_dice(run: Path, network: str, data: str) -> float:
    """Mean validation Dice of ``network`` in the run's ``last.pt``, evaluated once into ``eval_last_<network>``."""
    from frugalseg.evaluation.checkpoint import evaluate_checkpoint

    out = run / f"eval_last_{network}"
    if not (out / "summary.json").is_file():
        evaluate_checkpoint(run / "checkpoints" / "last.pt", data, out, device="cpu", network=network,
                            overwrite=True)
    return metric_value(json.loads((out / "summary.json").read_text()), "dice")


def measure(records: Path, rows: Sequence[str], data: str) -> list[Pair]:
    """Both networks' scores for every recorded seed of ``rows``; stops if a teacher disagrees with its record."""

    def score(record: RunRecord, run: Path) -> dict[str, Any]:
        dice = {net: network_dice(run, net, data) for net in NETWORKS}
        recorded = metric_value(record.summaries["last"], "dice")
        if abs(dice["teacher"] - recorded) > AGREEMENT:
            raise SystemExit(f"{run}: the teacher scores {dice['teacher']:.4f}, its record {recorded:.4f}")
        return dice

    pairs = []
    for row, record, dice in measured_runs(records, rows, "teacher_student", score):
        pairs.append(Pair(row, record.seed, dice))
        print(f"{row} s{record.seed}: " + ", ".join(f"{n} {d:.4f}" for n, d in dice.items()), flush=True)
    return pairs


def block(pairs: Sequence[Pair]) -> str:
    """Markdown: one line per row, mean ± std over seeds of each network and of the paired difference."""
    lines = ["ACDC validation, mean Dice of `last.pt`, both networks of the same checkpoint; mean ± sample std "
             "over seeds.", "",
             "| row | seeds | teacher (what the bench evaluates) | student | student − teacher | per seed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in dict.fromkeys(p.row for p in pairs):
        mine = [p for p in pairs if p.row == row]
        cells = [str(aggregate([p.dice[n] for p in mine])) for n in NETWORKS]
        diff = aggregate([p.difference for p in mine])
        spread = "" if diff.std is None else f" ± {diff.std:.3f}"
        seeds = ", ".join(f"s{p.seed} {p.difference:+.3f}" for p in mine)
        lines.append(f"| {row} | {len(mine)} | {cells[0]} | {cells[1]} | {diff.mean:+.3f}{spread} | {seeds} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = evidence_parser(__doc__.split("\n\n")[0], "teacher_student", ROWS).parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = measure(args.records, args.rows, args.data)
    if not pairs:
        raise SystemExit(f"{args.records}: no records of {', '.join(args.rows)}")
    write_evidence_block("teacher_student.py", "teacher_student", args, block(pairs))


if __name__ == "__main__":
    main()
