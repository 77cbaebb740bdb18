"""Which slices each active-learning strategy suggests, and where its rounds gain: read from the loop's records.

The loop's table says how much Dice a strategy's suggestions buy; it does not say what kind of slice they are.
Two things decide that on a short-axis cine stack: where the slice lies in its volume (the stack's first and last
slices, base and apex, are where the heart's outline is least typical) and what its reference mask holds (an apex
slice often has no RV, a slice beyond the heart no foreground at all). The sparse start budget masks the middle
slice of each volume, so the stack's ends are what it covers least.

For every committed round record the script reads the slices the strategy suggested after that round (the ones
the next round trains on with a mask), looks each up in the training data (its slice number among its volume's
slices, the classes its reference mask holds) and writes the ``<!-- suggestions -->`` block of
``docs/active-learning.md``:

- per strategy and round, pooled over the recorded seeds: how many suggestions lie within one slice of an end of
  their stack, how many hold all three structures, how many no foreground; beside the same shares for every
  training slice (what a uniform draw gets) and for the start budget's masked slices;
- per strategy and round, the validation Dice of each class (mean ± std over seeds), so a gain can be told apart
  by structure.

    python scripts/suggestion_positions.py --data ../shared/data/ACDC [--page docs/active-learning.md]
        [--out docs]   # the records: <out>/results/active_learning, as the bench's
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalseg.bench.active_learning import LoopOptions, RoundRecord, load_loop_spec
from frugalseg.bench.active_learning_page import by_strategy_round
from frugalseg.bench.tables import aggregate
from frugalseg.data.types import SliceItem
from frugalseg.data.volumes import volume_slices
from frugalseg.files import replace_marked_block

BLOCK = "suggestions"
END_SLICES = 1
"""A slice "at an end" lies within this many slices of its stack's first or last slice."""


@dataclass(frozen=True)
class SliceFacts:
    """What the block says about one training slice."""

    at_end: bool
    classes_present: int
    """Foreground classes its reference mask holds."""


def slice_facts(items: Sequence[SliceItem], num_classes: int) -> dict[str, SliceFacts]:
    """Each training slice's place in its stack and the foreground classes of its reference mask."""
    facts = {}
    for stack in volume_slices(items).values():
        last = len(stack) - 1
        for k, item in enumerate(stack):
            if item.label is None:
                raise SystemExit(f"{item.item_id}: no reference mask to read the classes from")
            present = int(np.count_nonzero(np.bincount(item.label.ravel(), minlength=num_classes)[1:]))
            facts[item.item_id] = SliceFacts(min(k, last - k) <= END_SLICES, present)
    return facts


def shares_row(name: str, ids: Iterable[str], facts: dict[str, SliceFacts], seeds: str, num_fg: int) -> str:
    """One table row: the share of ``ids`` at an end of its stack, with every structure, with none."""
    ids = list(ids)
    missing = [i for i in ids if i not in facts]
    if missing:
        raise SystemExit(f"{name}: slice {missing[0]} is not a training slice of the data (records of other data?)")
    found = [facts[i] for i in ids]
    if not found:
        raise SystemExit(f"{name}: no slices")
    n = len(found)

    def pct(count: int) -> str:
        return f"{100 * count / n:.0f} % ({count})"

    ends = pct(sum(f.at_end for f in found))
    full = pct(sum(f.classes_present == num_fg for f in found))
    empty = pct(sum(f.classes_present == 0 for f in found))
    return f"| {name} | {seeds} | {n} | {ends} | {full} | {empty} |"


def class_dice(rec: RoundRecord, name: str) -> float:
    """The record's mean validation Dice of class ``name`` (NaN where no volume had it to score)."""
    value = rec.summary["classes"][name]["dice"]["mean"]
    return float("nan") if value is None else float(value)


def block(records: Sequence[RoundRecord], facts: dict[str, SliceFacts], start: Sequence[str],
          classes: Sequence[str], strategies: Sequence[str] = ()) -> str:
    """The block's text: the suggestions' shares, then each round's Dice by class (round 0 once: it is one
    training per seed, shared by the strategies)."""
    groups = by_strategy_round(records, strategies)
    num_fg = len(classes)
    lines = [f"Suggestions pooled over seeds; \"at an end\": within {END_SLICES} slice of the first or last slice "
             "of its stack (base or apex); structures from the reference mask.", "",
             "| slices | seeds | n | at an end | all structures | no foreground |",
             "| --- | --- | --- | --- | --- | --- |",
             shares_row("every training slice", facts, facts, "—", num_fg),
             shares_row("round 0's masked slices (start budget)", start, facts, "—", num_fg)]
    for (strategy, round_), recs in groups.items():
        ids = [i for rec in recs for i in rec.suggested]
        if not ids:
            continue  # the loop's last round is scored but suggests nothing
        seeds = " ".join(str(r.seed) for r in recs)
        lines.append(shares_row(f"{strategy}, suggested after round {round_}", ids, facts, seeds, num_fg))
    lines += ["", "Validation Dice of `last.pt` by structure, mean ± sample std over seeds.", "",
              "| strategy | round | seeds | " + " | ".join(classes) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in classes) + " |"]
    starts = {r.seed: r for r in records if r.round == 0}
    dice_rows = [("every strategy (shared)", 0, list(starts.values()))] if starts else []
    dice_rows += [(strategy, round_, recs) for (strategy, round_), recs in groups.items() if round_ > 0]
    for strategy, round_, recs in dice_rows:
        cells = [str(aggregate([class_dice(r, c) for r in recs])) for c in classes]
        lines.append(f"| {strategy} | {round_} | {len(recs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from frugalseg.bench.active_learning_run import LoopRunner, recorded

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the data folder the loop trained on")
    p.add_argument("--page", type=Path, default=Path("docs/active-learning.md"))
    p.add_argument("--out", type=Path, default=Path("docs"),
                   help="as frugalseg bench --out: the loop's records are <out>/results/active_learning")
    args = p.parse_args(argv)
    spec = load_loop_spec()
    opts = LoopOptions(data=args.data, spec=spec, out=args.out)
    records = recorded(opts)  # the loop's own reader: the shipped spec's strategies, seeds and rounds
    if not records:
        raise SystemExit(f"{opts.records_dir}: no round records")
    runner = LoopRunner(opts, log=lambda _: None)
    data = runner.data()
    facts = slice_facts(data.train_items, data.source.num_classes)
    start = [i for i, item in runner.start(0).items.items() if item.has_full_label]
    classes = [data.source.classes[k] for k in sorted(data.source.classes)]
    command = f"python scripts/suggestion_positions.py --data {args.data}"
    replace_marked_block(args.page, BLOCK, f"Written by `{command}` from the loop's records. "
                         + block(records, facts, start, classes, spec.strategies))
    print(f"wrote the {BLOCK} block of {args.page}")


if __name__ == "__main__":
    main()
