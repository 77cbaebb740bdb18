"""Time to accuracy: validation Dice against training time, one curve per training recipe.

A *recipe* is a named set of config overrides (``RECIPES`` below) applied over one shipped config and
schedule (default ``acdc_supervised``, ``schedule=quick``). The script trains a recipe with the engine
in segments (``train_run(stop_at=...)`` then a resume, which is exact: batches and schedules are functions
of the iteration) and, between segments, scores ``last.pt`` on the validation volumes with whole-slice
inference on the config's grid (mean Dice over volumes and foreground classes, the engine's validation
figure). Evaluation is timed apart and never counted as training time.

Each point records the iteration, the wall seconds spent training so far, the process CPU seconds spent
training so far (``time.process_time``: every thread of this process, the measure that contention from
other processes distorts least), the validation Dice and the 1-minute load average (how busy the machine
was). A curve trained on a busy machine has honest iterations but inflated wall seconds, so the figure's
x axis is never the wall time: it is the process CPU minutes, or, when every recipe on the page has one,
*calibrated minutes*: ``--calibrate N`` times N steps of every recipe one after the other in one process
(after an untimed warm-up) and stores seconds per iteration per recipe; the page then plots iteration x
calibrated seconds per iteration, what a quiet machine would need if the calibration ran on one. The page says
which axis it used and under which conditions every number was measured.

    # one curve (CSV written beside the page: docs/performance/time_to_accuracy/<recipe>-s<seed>.csv)
    python benchmarks/time_to_accuracy.py --data ../shared/data/ACDC --recipe crop128_sgd --every 500 \\
        --runs /tmp/tta_runs
    # seconds per iteration of every recipe, side by side in one run (do it on a quiet machine)
    python benchmarks/time_to_accuracy.py --data ../shared/data/ACDC --calibrate 40 --recipe all
    # figure + table into docs/performance.md from the stored CSVs and calibration, plus the shipped schedule's
    # curves from the bench records (--records, default docs/results/runs; BENCH_ROWS below)
    python benchmarks/time_to_accuracy.py --page docs/performance.md
    python benchmarks/time_to_accuracy.py --smoke   # seconds, on the bundled sample: checks the script only

The data folder comes from ``--data`` or ``$FRUGALSEG_DATA``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frugalseg.config import RunConfig

_FORMER_QUICK = ["data.patch_size=[128,128]", "train.batch_size=8", "train.iterations=2000", "optim.name=sgd",
                 "optim.lr=0.01", "optim.lr_schedule=poly", "optim.warmup_iterations=0"]
"""The quick schedule before issue #21, spelled out so that every recipe means the same whatever quick becomes."""
_GRID = [*_FORMER_QUICK, "data.patch_size=[256,256]"]
_CROP128 = [*_GRID, "data.crop_size=[128,128]"]
_COSINE = ["optim.warmup_iterations=100", "optim.lr_schedule=cosine"]
RECIPES: dict[str, tuple[str, list[str]]] = {
    "quick": ("the former quick schedule: every slice resized to 128x128, batch 8, SGD 0.01 poly, 2000 it",
              _FORMER_QUICK),
    "quick_adamw": ("every slice resized to 128x128, batch 8, AdamW 1e-3 (warm-up 100) cosine, 2000 it",
                    [*_FORMER_QUICK, "optim.name=adamw", "optim.lr=0.001", *_COSINE]),
    "crop128_sgd": ("256 grid, random 128x128 crops, batch 8, SGD 0.01 poly, 2000 it", _CROP128),
    "crop128_sgd05": ("256 grid, random 128x128 crops, batch 8, SGD 0.05 (warm-up 100) cosine, 2000 it",
                      [*_CROP128, "optim.lr=0.05", *_COSINE]),
    "crop128_adamw": ("256 grid, random 128x128 crops, batch 8, AdamW 1e-3 (warm-up 100) cosine, 2000 it",
                      [*_CROP128, "optim.name=adamw", "optim.lr=0.001", *_COSINE]),
    "crop160_sgd": ("256 grid, random 160x160 crops, batch 8, SGD 0.01 poly, 1300 it (the pixels of 2000 at 128)",
                    [*_GRID, "data.crop_size=[160,160]", "train.iterations=1300"]),
}
_MASKS7 = ["data.simulate.kind=budget", "data.simulate.budget=masks7"]
RECIPES["quick_adamw_masks7"] = ("quick_adamw on the masks7 budget (7 patients' masks)",
                                 [*RECIPES["quick_adamw"][1], *_MASKS7])
RECIPES["quick_adamw_masks3"] = ("quick_adamw on the masks3 budget (3 patients' masks)",
                                 [*RECIPES["quick_adamw"][1], "data.simulate.kind=budget",
                                  "data.simulate.budget=masks3"])
RECIPES["chosen"] = ("the quick schedule as shipped since issue #21: quick_adamw for 3500 it", [])
RECIPES["chosen_masks7"] = ("the shipped quick schedule on the masks7 budget", _MASKS7)
"""Recipe name -> (what it is, overrides over the config and its schedule). The first six cost what the former
quick schedule costs (2000 steps of 8 images of 128x128, or as many pixels), so their curves compare levers at
one budget; the others train the winner on another budget of annotations or for longer."""

FIELDS = ["recipe", "seed", "iteration", "train_wall_s", "train_cpu_s", "val_dice", "eval_wall_s", "load1"]
BLOCK = "time_to_accuracy"
RESULTS = Path("docs/performance/time_to_accuracy")
FIGURE = Path("docs/figures/time_to_accuracy.png")
RECORDS = Path("docs/results/runs")
BENCH_ROWS = {"chosen": "supervised", "chosen_masks7": "supervised7"}
"""Recipes whose curves are the bench's own records (``<row>-s<seed>/val_log.csv``): the shipped schedule is
what the bench trains, so its 3500-step curves are not trained a second time here. The engine validates
``last`` weights every 500 iterations with whole-slice inference, the figure this script scores."""
SMOKE = ["data.patch_size=[64,64]", "model.features=[8,16,32,64,128]", "train.precision=off",
         "train.iterations=4", "train.batch_size=2"]
"""``--smoke``: the bundled sample, a small U-Net at 64x64, a few steps: checks the script, measures nothing."""


def recipe_config(config: str, schedule: str, recipe: str, data: str, extra: Sequence[str] = ()) -> RunConfig:
    """The validated run config of ``recipe`` (its overrides, then ``extra``) over ``config``/``schedule``."""
    from frugalseg.config import load_config

    if recipe not in RECIPES:
        raise SystemExit(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return load_config(config, [f"schedule={schedule}", f"data.root={data}", *RECIPES[recipe][1], *extra])


def points(total: int, every: int) -> list[int]:
    """The iterations a curve is scored at: every ``every`` iterations and the last one."""
    marks = list(range(every, total, every))
    return [*marks, total]


def score(run_dir: Path, val_cases: list, classes: dict) -> float:
    """Mean validation Dice of ``run_dir``'s ``last.pt``, whole slices on the config's grid."""
    from frugalseg.evaluation.inference import evaluate_cases
    from frugalseg.evaluation.metrics import summarise
    from frugalseg.methods.restore import load_trained_model

    model = load_trained_model(run_dir / "checkpoints" / "last.pt")
    cfg = model.config
    results = evaluate_cases(model.network, val_cases, patch_size=cfg.data.patch_size,
                             batch_size=cfg.train.val_batch_size, amp=cfg.train.precision != "off")
    return float(summarise(results, classes)["overall"]["dice"]["mean"])


def train_curve(args: argparse.Namespace, recipe: str, extra: Sequence[str]) -> Path:
    """Train ``recipe`` in segments, scoring ``last.pt`` after each; write and return its CSV."""
    from frugalseg.engine.run_data import RunData, load_run_data
    from frugalseg.train import train_run

    cfg = recipe_config(args.config, args.schedule, recipe, args.data, [f"train.seed={args.seed}", *extra])
    data = load_run_data(cfg)
    train_only = RunData(data.source, data.train_items, [], data.annotations)  # no validation inside the loop
    run_dir = Path(args.runs) / f"{recipe}-s{args.seed}"
    out = Path(args.results) / f"{recipe}-s{args.seed}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    wall = cpu = 0.0
    rows = []
    for k, stop in enumerate(points(cfg.train.iterations, args.every)):
        t0, c0 = time.perf_counter(), time.process_time()
        train_run(cfg, run_dir, resume=k > 0, overwrite=k == 0, progress=False, run_data=train_only, stop_at=stop)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        e0 = time.perf_counter()
        dice = score(run_dir, data.val_cases, data.source.classes)
        rows.append({"recipe": recipe, "seed": args.seed, "iteration": stop, "train_wall_s": round(wall, 2),
                     "train_cpu_s": round(cpu, 2), "val_dice": round(dice, 5),
                     "eval_wall_s": round(time.perf_counter() - e0, 2), "load1": round(os.getloadavg()[0], 2)})
        with out.open("w", newline="") as fh:  # rewritten at every point: a killed run keeps its curve so far
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(json.dumps(rows[-1]), flush=True)
    return out


def calibrate(args: argparse.Namespace, recipes: Sequence[str], extra: Sequence[str]) -> Path:
    """Seconds per training iteration of each recipe, one after the other in this process; stored as JSON."""
    from frugalseg.bench.provenance import machine_description, utc_now
    from frugalseg.engine.run_data import RunData, load_run_data
    from frugalseg.train import train_run

    found: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    for recipe in recipes:
        warm = args.warmup
        stop = warm + args.calibrate
        cfg = recipe_config(args.config, args.schedule, recipe, args.data,
                            [f"train.log_every={args.calibrate}", f"train.checkpoint_every={10**9}", *extra])
        data = load_run_data(cfg, with_val=False)
        with tempfile.TemporaryDirectory() as tmp:
            train_only = RunData(data.source, data.train_items, [], data.annotations)
            train_run(cfg, Path(tmp) / "run", progress=False, stop_at=warm, run_data=train_only)
            t0 = time.perf_counter()
            train_run(cfg, Path(tmp) / "run", resume=True, progress=False, stop_at=stop, run_data=train_only)
            found[recipe] = (time.perf_counter() - t0) / args.calibrate
        print(f"{recipe}: {found[recipe]:.4f} s/iteration", flush=True)
    out = Path(args.results) / "calibration.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds_per_iteration": found, "steps": args.calibrate, "warmup": args.warmup,
              "config": args.config, "schedule": args.schedule, "measured": utc_now(),
              "machine": machine_description(), "load1_before": round(load_before, 2),
              "load1_after": round(os.getloadavg()[0], 2), "threads": _threads()}
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def read_curves(folder: Path) -> dict[str, list[list[dict[str, float]]]]:
    """Recipe -> one list of rows per seed, from the CSVs in ``folder``."""
    curves: dict[str, list[list[dict[str, float]]]] = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="") as fh:
            rows = [{k: float(v) for k, v in r.items() if k != "recipe"} for r in csv.DictReader(fh)]
        if rows:
            curves.setdefault(path.stem.rsplit("-s", 1)[0], []).append(rows)
    return curves


def minutes(rows: list[dict[str, float]], recipe: str, calibration: dict | None) -> list[float]:
    """The x axis of a curve: iterations x calibrated seconds per iteration when ``recipe`` has a calibration
    (minutes alone on the CPU), else the process CPU minutes measured while it trained (what other processes'
    load distorts least; for a one-thread run, about the wall minutes it would take alone)."""
    if calibration and recipe in calibration["seconds_per_iteration"]:
        spi = calibration["seconds_per_iteration"][recipe]
        return [r["iteration"] * spi / 60.0 for r in rows]
    return [r["train_cpu_s"] / 60.0 for r in rows]


def record_curves(records: Path) -> dict[str, list[list[dict[str, float]]]]:
    """Recipe -> one curve per seed, from the bench records of the rows in ``BENCH_ROWS``.

    Only iterations and Dice come from a record (its run trained beside another one, so its times say nothing
    of a run alone); such curves therefore go on the page only on the calibrated axis.
    """
    from frugalseg.bench.records import read_validation_log, row_record_dirs

    nan = float("nan")
    curves: dict[str, list[list[dict[str, float]]]] = {}
    for recipe, row in BENCH_ROWS.items():
        for folder in row_record_dirs(records, row):
            log = read_validation_log(folder / "val_log.csv")
            if log:
                curves.setdefault(recipe, []).append(
                    [{"iteration": r["iteration"], "val_dice": r["dice"], "train_wall_s": nan, "train_cpu_s": nan,
                      "load1": nan} for r in log])
    return curves


def _cell(value: float, digits: int = 1) -> str:
    """A table cell of a measured value; ``n/a`` for a curve that did not measure it (a bench record)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def mean_curve(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Point-wise mean over seeds at the iterations every seed reached (``records.mean_over_seeds``)."""
    from frugalseg.bench.records import mean_over_seeds

    curve = mean_over_seeds(runs)
    return [{"iteration": float(it), **{k: float(v[j]) for k, v in curve.mean.items()}}
            for j, it in enumerate(curve.iterations)]


def write_page(page: Path, folder: Path, figure: Path, records: Path | None = None) -> None:
    """Figure and table of every stored curve into the ``time_to_accuracy`` block of ``page``; with ``records``,
    also the bench's curves of the shipped schedule (``BENCH_ROWS``) when the axis is calibrated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalseg.files import replace_marked_block

    curves = read_curves(folder)
    if not curves:
        raise SystemExit(f"{folder}: no curves (CSV files) to write a page from")
    cal_path = folder / "calibration.json"
    calibration = json.loads(cal_path.read_text()) if cal_path.is_file() else None
    calibrated = calibration is not None and all(r in calibration["seconds_per_iteration"] for r in curves)
    if calibrated and records is not None:
        curves.update(record_curves(records))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines = ["| recipe | what | seeds | iterations | s / it (calibrated) | x at end (min) | wall min (measured) | "
             "process CPU min | load avg | val Dice at end | best val Dice on the curve (at it) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for recipe, runs in curves.items():
        rows = mean_curve(runs)
        x = minutes(rows, recipe, calibration if calibrated else None)
        ax.plot(x, [r["val_dice"] for r in rows], marker="o", ms=3, label=f"{recipe} ({len(runs)} seed(s))")
        end = rows[-1]
        best = max(rows, key=lambda r: r["val_dice"])
        spi = (calibration or {}).get("seconds_per_iteration", {}).get(recipe)
        lines.append(
            f"| {recipe} | {RECIPES.get(recipe, ('?', []))[0]} | {len(runs)} | {int(end['iteration'])} | "
            f"{f'{spi:.3f}' if spi else 'n/a'} | {x[-1]:.1f} | {_cell(end['train_wall_s'] / 60)} | "
            f"{_cell(end['train_cpu_s'] / 60)} | {_cell(sum(r['load1'] for r in rows) / len(rows))} | "
            f"{end['val_dice']:.3f} | {best['val_dice']:.3f} ({int(best['iteration'])}) |")
    _save_figure(fig, ax, figure, calibrated)
    axis = _axis_sentence(calibration if calibrated else None)
    rel = os.path.relpath(figure, page.parent)
    body = (f"## Time to accuracy (`benchmarks/time_to_accuracy.py`)\n\n"
            f"Validation Dice (mean over the validation volumes and the foreground classes, whole slices on the "
            f"config's grid, `last.pt` after each segment) against training time; evaluation is not counted. "
            f"Curves are the mean over the seeds listed. {axis} The table also gives what each curve measured: wall "
            f"and process CPU minutes while training (CPU counts every thread) and the mean 1-minute load average "
            f"at its points (above 2 the 2-core machine was shared).{_records_sentence(curves)}\n\n"
            f"![time to accuracy]({rel})\n\n"
            + "\n".join(lines) + "\n")
    replace_marked_block(page, BLOCK, body, "# Performance\n")


def _save_figure(fig, ax, figure: Path, calibrated: bool) -> None:
    """Label the axes (the x axis says which minutes it counts), then write and close the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("training minutes alone on the CPU (iterations x calibrated s/it)" if calibrated
                  else "process CPU minutes spent training (measured)")
    ax.set_ylabel("validation mean Dice (last.pt)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)


def _axis_sentence(calibration: dict | None) -> str:
    """What the page says of its x axis: the calibration run it rests on, or the measured CPU minutes."""
    if calibration:
        return (f"The x axis is iterations x seconds per iteration from one calibration run "
                f"(`--calibrate {calibration['steps']}`, every recipe timed one after the other, "
                f"{calibration['threads']} threads, measured {calibration['measured']} on {calibration['machine']}, "
                f"1-minute load average "
                f"{calibration['load1_before']} before and {calibration['load1_after']} after).")
    return ("The x axis is the process CPU minutes each curve spent training (no quiet calibration for every "
            "recipe): on a shared machine the wall minutes overstate what a quiet one needs, the CPU minutes much "
            "less so; with one thread they are about the wall minutes of the run alone on one core.")


def _records_sentence(curves: dict) -> str:
    """What the page says of the curves that come from bench records, if any."""
    taken = [f"`{recipe}` (row `{BENCH_ROWS[recipe]}`, {len(curves[recipe])} seed(s))"
             for recipe in BENCH_ROWS if recipe in curves]
    if not taken:
        return ""
    return (" The curves of " + ", ".join(taken) + " are the bench's own records of the shipped schedule "
            "(`docs/results/runs/<row>-s<seed>/val_log.csv`: the engine's validation of `last` weights every 500 "
            "iterations), not trained again here; those runs trained beside another one, so their measured times "
            "are n/a and they sit on the calibrated axis only.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("FRUGALSEG_DATA"), help="data folder ($FRUGALSEG_DATA)")
    parser.add_argument("--config", default="acdc_supervised")
    parser.add_argument("--schedule", default="quick")
    parser.add_argument("--recipe", action="append", default=[], help="a name of RECIPES, or 'all'; repeatable")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="extra override key=value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=500, help="score last.pt every this many iterations")
    parser.add_argument("--runs", default=os.environ.get("FRUGALSEG_RUNS", "runs") + "/time_to_accuracy",
                        help="run folders (outside git)")
    parser.add_argument("--results", default=str(RESULTS), help="folder of the curves' CSVs and calibration")
    parser.add_argument("--calibrate", type=int, default=0, help="time this many steps of every recipe instead")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before a calibration")
    parser.add_argument("--page", help="write the figure and table into this page from the stored results")
    parser.add_argument("--figure", default=str(FIGURE))
    parser.add_argument("--records", default=str(RECORDS),
                        help=f"bench records whose curves give the recipes {', '.join(BENCH_ROWS)} ('' for none)")
    parser.add_argument("--smoke", action="store_true", help="seconds on the bundled sample: checks the script")
    args = parser.parse_args(argv)
    recipes = list(RECIPES) if "all" in args.recipe else args.recipe
    if args.smoke:
        _smoke(args)
        return
    if args.page:
        records = Path(args.records) if args.records else None
        write_page(Path(args.page), Path(args.results), Path(args.figure), records)
        return
    if not args.data:
        raise SystemExit("say where the data is: --data DIR or $FRUGALSEG_DATA")
    if not recipes:
        raise SystemExit("name at least one --recipe (or 'all')")
    if args.calibrate:
        print(calibrate(args, recipes, args.extra))
        return
    for recipe in recipes:
        print(train_curve(args, recipe, args.extra))


def _smoke(args: argparse.Namespace) -> None:
    """Every mode once on the bundled sample (the default config and schedule, shrunk), into a temporary folder."""
    from frugalseg.data.sample import sample_path

    sample = str(sample_path())
    with tempfile.TemporaryDirectory() as tmp:
        base = ["--data", sample, "--config", args.config, "--schedule", args.schedule, "--runs", f"{tmp}/runs",
                "--results", f"{tmp}/results", *(f"--set={o}" for o in SMOKE)]
        main([*base, "--recipe", "quick", "--every", "2"])
        main([*base, "--recipe", "quick", "--calibrate", "2", "--warmup", "1"])
        main(["--page", f"{tmp}/page.md", "--results", f"{tmp}/results", "--figure", f"{tmp}/fig.png",
              "--records", ""])
        print(Path(f"{tmp}/page.md").read_text())


if __name__ == "__main__":
    main()
