"""Training throughput and peak memory of every registered method, relative to ``supervised`` in the same run.

Each method trains with the engine from its shipped ACDC config (``acdc_<name>``: its networks, teachers,
heads and batch composition) under one schedule (default ``quick``: 128x128, batch 8) for a few timed
iterations after a warm-up, in every stage of a multi-stage method (ACTION's three stages are timed alike
and averaged by images). images/s = images of the timed steps / their wall time (data loading,
augmentation, forward, backward, optimiser step, EMA; no validation). Peak memory: on a GPU,
``torch.cuda.max_memory_allocated`` during training; on a CPU, the highest resident memory of the
process during training (``/proc/self/statm`` sampled every 5 ms) minus the resident memory just before
it, the data being loaded already; each method in its own subprocess so that nothing of another
method's run is counted. With ``--out`` the table replaces the ``<!-- method_throughput -->``
block of that page.

    python benchmarks/method_throughput.py --data /path/to/ACDC --out docs/performance.md
    python benchmarks/method_throughput.py --smoke --out /tmp/perf.md   # seconds, on the bundled sample
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from train_step import PAGE_HEADER  # the other benchmarks' page header (this folder is on sys.path)

from frugalseg.bench.provenance import device_name, machine_description, utc_now
from frugalseg.config import DATA_ENV
from frugalseg.files import replace_marked_block, write_text_atomic
from frugalseg.training import Method

SMOKE = ["data.patch_size=[64,64]", "model.features=[8,16,32,64,128]", "train.precision=off"]
"""``--smoke``: the bundled sample at 64x64 with a small U-Net, one warm-up and one timed step, one process."""


def smoke_budget(config_name: str, folder: Path) -> list[str]:
    """For the sample's 4 training patients: the config's budget with at most 2 masked patients (ACDC budgets
    mask the first 3 or 7), so that every method finds the kinds of items it trains on."""
    from frugalseg.config import configs_dir, load_config

    sim = load_config(config_name, ["data.root=."]).data.simulate
    if sim is None or sim.kind != "budget" or sim.budget is None:
        return []
    budget = yaml.safe_load((configs_dir() / "budgets" / f"{sim.budget}.yaml").read_text())
    if budget.get("masks", {}).get("first_patients"):
        budget["masks"]["first_patients"] = min(2, budget["masks"]["first_patients"])
    path = folder / f"{config_name}_budget.yaml"
    path.write_text(yaml.safe_dump(budget))
    return [f"data.simulate.budget={path}"]


def shipped_configs() -> dict[str, str]:
    """Method name -> the shipped ACDC config that trains it (``acdc_<method>`` where the names agree)."""
    from frugalseg.config import configs_dir, read_config_tree

    found: dict[str, str] = {}
    for path in sorted(configs_dir().glob("acdc_*.yaml")):
        name = read_config_tree(path).get("method", {}).get("name")  # on its bases: the method file names it
        if name and (name not in found or path.stem == f"acdc_{name}"):
            found[name] = path.stem
    return found


class RssSampler:
    """Highest resident memory of this process while the ``with`` body runs, polled from ``/proc/self/statm``.

    ``ru_maxrss`` alone would report the peak of the whole process, data loading included; sampling from
    just before training gives the growth training itself causes. Falls back to ``ru_maxrss`` off Linux.
    """

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.page = resource.getpagesize()
        self.start = self.peak = 0

    def rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self.page
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        import threading

        self.start = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _config(config_name: str, data: str, schedule: str, iterations: int, extra: list[str]):
    from frugalseg.config import load_config

    return load_config(config_name, [f"data.root={data}", f"schedule={schedule}", f"train.iterations={iterations}",
                                     f"train.val_every={iterations + 1}", f"train.checkpoint_every={iterations}",
                                     "train.log_every=1", *extra])


def measure(config_name: str, data: str, schedule: str, warmup: int, iters: int, extra: list[str],
            before_training: Callable[[], None] | None = None) -> dict:
    """Train ``config_name`` for ``warmup + iters`` iterations per stage; images/s and peak memory.

    ``before_training`` runs once the data is loaded, just before the training (``side_by_side.py``
    waits there so that parts in several processes start together)."""
    from frugalseg.engine.run_data import load_run_data
    from frugalseg.methods import build_method
    from frugalseg.train import train_run

    per_stage = warmup + iters
    probe = _config(config_name, data, schedule, per_stage, extra)
    run_data = load_run_data(probe, with_val=False)
    num_classes = run_data.source.num_classes
    method = build_method(probe, run_data.source.in_channels, num_classes)
    count = len([s for s in method.stages(1000 * per_stage) if s.iterations > 0])
    total = per_stage * count  # the shortest run in which every stage gets warmup + iters iterations
    while min(s.iterations for s in method.stages(total) if s.iterations > 0) < per_stage:
        total += 1
    config = _config(config_name, data, schedule, total, extra)
    stages = [s for s in method.stages(total) if s.iterations > 0]
    batch = {i: s.batch_size or config.train.batch_size for i, s in enumerate(stages)}
    cuda = torch.cuda.is_available() and (config.train.device or "cuda").startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if before_training is not None:
        before_training()
    with tempfile.TemporaryDirectory() as tmp, RssSampler() as rss:
        train_run(config, Path(tmp) / "run", progress=False, run_data=run_data)
        with (Path(tmp) / "run" / "train_log.csv").open() as fh:
            rows = list(csv.DictReader(fh))
    if cuda:
        memory, kind = torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated during training"
    else:
        memory = rss.growth_mib
        kind = "growth of the process's resident memory during training (sampled every 5 ms, data already loaded)"
    run_iterations, run_images = _whole_run(method, config_name, data, schedule, extra)
    images = seconds = 0.0
    for stage in sorted({int(float(r.get("stage") or 0)) for r in rows}):
        timed = [r for r in rows if int(float(r.get("stage") or 0)) == stage][warmup:]
        images += batch.get(stage, config.train.batch_size) * len(timed)
        seconds += sum(float(r["seconds_per_iteration"]) for r in timed)
    return {"images_per_second": images / seconds, "memory_mib": memory, "memory_kind": kind,
            "stages": len(stages), "batch": config.train.batch_size,
            "shape": f"{config.data.patch_size[0]}x{config.data.patch_size[1]}",
            "run_iterations": run_iterations, "run_images": run_images,
            "run_minutes": run_images / (images / seconds) / 60.0}


def _whole_run(method: Method, config_name: str, data: str, schedule: str, extra: list[str]) -> tuple[int, int]:
    """(iterations, images) of a whole run of the schedule as shipped (every stage, its own batch size).

    The measured images/s times this gives the minutes a run of the schedule takes at that speed, the
    figure issue #21's time targets are stated in (``scripts/schedule_targets.py`` reads it)."""
    from frugalseg.config import load_config

    shipped = load_config(config_name, [f"data.root={data}", f"schedule={schedule}", *extra])
    stages = [s for s in method.stages(shipped.train.iterations) if s.iterations > 0]
    return shipped.train.iterations, sum(s.iterations * (s.batch_size or shipped.train.batch_size) for s in stages)


def child(args: argparse.Namespace, config_name: str) -> dict:
    """:func:`measure` in a fresh interpreter (its peak RSS is its own), as ``train_step.py`` runs its parts."""
    cmd = [sys.executable, __file__, "--part", config_name, "--data", args.data, "--schedule", args.schedule,
           "--warmup", str(args.warmup), "--iters", str(args.iters), *(f"--set={e}" for e in args.extra)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])


def table(results: dict[str, dict], configs: dict[str, str]) -> list[str]:
    base = results.get("supervised")
    lines = ["| method | config | stages | images / s | vs supervised | min / run (iterations) | peak memory (MiB) "
             "| vs supervised |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, r in results.items():
        speed = f"{r['images_per_second'] / base['images_per_second']:.2f}x" if base else "—"
        mem = (f"{r['memory_mib'] / base['memory_mib']:.2f}x" if base and base["memory_mib"] > 0 else "—")
        lines.append(f"| {method} | {configs[method]} | {r['stages']} | {r['images_per_second']:.1f} | {speed} "
                     f"| {r['run_minutes']:.1f} ({r['run_iterations']}) | {r['memory_mib']:.0f} | {mem} |")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get(DATA_ENV), help=f"the ACDC folder (default: ${DATA_ENV})")
    p.add_argument("--schedule", default="quick", help="schedule of the shipped configs (quick: 128x128, batch 8)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per stage")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per stage")
    p.add_argument("--set", dest="extra", action="append", default=[], help="override for every method's config")
    p.add_argument("--methods", nargs="+", help="only these methods (supervised is always measured)")
    p.add_argument("--smoke", action="store_true", help="tiny and in one process: checks the script, measures nothing")
    p.add_argument("--part", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="Markdown page whose method_throughput block to replace")
    p.add_argument("--json", type=Path, help="also write the measurements here (scripts/schedule_targets.py reads "
                   "docs/performance/method_throughput.json)")
    return p


def _measure_all(args: argparse.Namespace, configs: dict[str, str]) -> dict[str, dict]:
    """Every wanted method, supervised first: in this process for the smoke mode, else one subprocess each."""
    from frugalseg.methods import METHODS

    wanted = ["supervised", *sorted(m for m in (args.methods or METHODS) if m != "supervised")]
    missing = [m for m in wanted if m not in configs]
    if missing:
        raise SystemExit(f"no shipped acdc_*.yaml config trains {missing}")
    results = {}
    for method in wanted:
        if args.smoke:
            with tempfile.TemporaryDirectory() as tmp:
                extra = [*args.extra, *smoke_budget(configs[method], Path(tmp))]
                results[method] = measure(configs[method], args.data, args.schedule, args.warmup, args.iters, extra)
        else:
            results[method] = child(args, configs[method])
        print(method, results[method], flush=True)
    return results


def _block(args: argparse.Namespace, results: dict[str, dict], configs: dict[str, str]) -> str:
    """The page's ``method_throughput`` block: what was measured, how, where, and the table."""
    first = results["supervised"]
    memory = first["memory_kind"] + (" (smoke: one process, not per method)" if args.smoke else "")
    return "\n".join([
        "## Training throughput per method (`benchmarks/method_throughput.py`)",
        "",
        f"Each method's shipped config, schedule `{args.schedule}` ({first['shape']}, batch {first['batch']}"
        f"{', ' + ' '.join(args.extra) if args.extra else ''}), trained by the engine: {args.iters} timed "
        f"iterations after {args.warmup} warm-up in each stage; images/s counts every image of a batch (masked "
        "or not) over data loading, augmentation, forward, backward, optimiser and EMA steps; min / run: a whole "
        "run of the schedule (every stage at its batch size) at that speed, validation excluded. Peak memory: "
        f"{memory}{', one subprocess per method' if not args.smoke else ''}. Measured {utc_now()} on "
        f"{machine_description()}; all rows in one run, device {device_name()}.",
        "",
        *table(results, configs),
    ])


def _write_json(path: Path, args: argparse.Namespace, results: dict[str, dict]) -> None:
    tree = {"measured": utc_now(), "machine": machine_description(), "device": device_name(),
            "schedule": args.schedule, "extra": args.extra, "smoke": args.smoke, "methods": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(tree, indent=2) + "\n", overwrite=True)


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if not args.smoke and not args.data:
        p.error(f"--data is required (or set ${DATA_ENV})")
    if args.part:
        print("RESULT " + json.dumps(measure(args.part, args.data, args.schedule, args.warmup, args.iters, args.extra)))
        return 0
    if args.smoke:
        from frugalseg.data.sample import sample_path

        args.data, args.warmup, args.iters, args.extra = str(sample_path()), 1, 1, [*SMOKE, *args.extra]
    configs = shipped_configs()
    results = _measure_all(args, configs)
    body = _block(args, results, configs)
    print(body)
    if args.out:
        replace_marked_block(args.out, "method_throughput", body, PAGE_HEADER)
    if args.json:
        _write_json(args.json, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
