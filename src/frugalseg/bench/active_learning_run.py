"""Running the active-learning loop: each round claimed under a lock, trained, recorded (see ``active_learning``)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from frugalseg.active.predictions import load_scoring_model
from frugalseg.active.ranking import Selection
from frugalseg.active.suggest import rank_pool, unannotated
from frugalseg.bench.active_learning import (
    Log,
    LoopOptions,
    RecordMismatchError,
    RoundRecord,
    comparable,
    read_record,
    record_path,
    round_config,
    shared_row,
    start_config,
    with_masks,
)
from frugalseg.bench.cost import count_annotations
from frugalseg.config import RunConfig, load_config
from frugalseg.data.annotations import AnnotationFile, save_annotations
from frugalseg.engine.run_data import RunData, load_run_data, simulated_annotations
from frugalseg.files import write_text_atomic
from frugalseg.locks import FileLock, LockHeldError

__all__ = ["LoopRunner"]

POLL_SECONDS = 30.0
"""How often a process whose next rounds another process holds looks again (a round trains for minutes)."""


@dataclass
class LoopRunner:
    """Runs the rounds of ``opts``; reads the data only when a round has to be trained."""

    opts: LoopOptions
    log: Log = print
    poll_seconds: float = POLL_SECONDS
    _data: RunData | None = None
    _starts: dict[int, AnnotationFile] = field(default_factory=dict)

    # ----- what every round shares ---------------------------------------------------------------------------
    def data(self) -> RunData:
        if self._data is None:
            opts = self.opts
            config = load_config(opts.spec.config, [f"data.root={opts.data_root()}", f"schedule={opts.schedule}",
                                                    *opts.spec.overrides, "data.simulate=null", *opts.extra])
            self._data = load_run_data(config)
        return self._data

    def start(self, seed: int) -> AnnotationFile:
        """Round 0's annotations: what round 0's run simulates from the start budget (:func:`start_config`)."""
        if seed not in self._starts:
            data = self.data()
            sim = start_config(self.opts, self.opts.data_root(), seed).data.simulate
            assert sim is not None  # start_config always simulates
            self._starts[seed] = simulated_annotations(sim, data.source, data.train_items)
        return self._starts[seed]

    # ----- the loop --------------------------------------------------------------------------------------------
    def run(self) -> list[RoundRecord]:
        """Every round of every strategy and seed; the records (read or made).

        Round by round: round r of every seed and strategy before round r + 1 of any. A loop stopped part
        way (a session's end) then leaves every strategy and seed at the same round, so what is recorded
        already compares the strategies at equal annotator time with a spread over seeds, rather than one
        seed's whole curves and no other's (the loop's 36 trainings take longer than a 3-hour session).

        Each round is claimed under a lock file first (:meth:`claimed_round`), so several processes running
        the same loop (``--jobs``: :mod:`frugalseg.bench.active_learning_workers`) share its rounds: one that
        finds a round claimed goes on to the next trajectory it can start, and waits only when none is left.

        Each pass takes the rounds already begun first (:meth:`begun`: recorded, or stopped part way with a
        checkpoint), then the others: a loop restarted after a stop resumes the training it left rather than
        starting a new one beside it and leaving the part-trained one for last.
        """
        spec = self.opts.spec
        order = [(seed, round_, strategy) for round_ in range(spec.rounds + 1) for seed in self.opts.seeds
                 for strategy in spec.strategies]
        done: dict[tuple[int, int, str], RoundRecord] = {}
        while True:
            claimed_elsewhere = False
            for begun_only in (True, False):
                for seed, round_, strategy in order:
                    if (seed, round_, strategy) in done or (begun_only and not self.begun(strategy, seed, round_)):
                        continue
                    previous = done.get((seed, round_ - 1, strategy))
                    if round_ > 0 and previous is None:
                        continue  # its trajectory's last round is another process's, still running
                    annotated = [] if previous is None else [*previous.annotated, *previous.suggested]
                    rec = self.claimed_round(strategy, seed, round_, annotated)
                    if rec is None:
                        claimed_elsewhere = True
                    else:
                        done[(seed, round_, strategy)] = rec
            if len(done) == len(order):
                return [done[key] for key in order]
            if claimed_elsewhere:
                self.log(f"{len(order) - len(done)} round(s) left, the next ones claimed by another process: "
                         f"waiting {self.poll_seconds:.0f} s")
            time.sleep(self.poll_seconds)

    @staticmethod
    def run_name(strategy: str, seed: int, round_: int) -> str:
        """A round's run folder and lock name; round 0 is one training per seed, shared by the strategies."""
        return f"start-s{seed}" if round_ == 0 else f"{strategy}-r{round_}-s{seed}"

    def begun(self, strategy: str, seed: int, round_: int) -> bool:
        """Whether the round is recorded or its own run folder holds a checkpoint (a training stopped part way).

        Round 0 of a seed whose start is a bench row trains in that row's folder; :meth:`run` needs no
        preference there, as every strategy's round 0 waits for it alike.
        """
        if record_path(self.opts.records_dir, strategy, seed, round_).is_file():
            return True
        return (self.opts.runs_dir / self.run_name(strategy, seed, round_) / "checkpoints" / "last.pt").is_file()

    def claimed_round(self, strategy: str, seed: int, round_: int, annotated: list[str]) -> RoundRecord | None:
        """:meth:`round` under its lock file, or ``None`` while another process holds it.

        Round 0 is one training per seed, shared by the strategies, so its lock is the seed's (:meth:`run_name`).
        The lock is an ``flock`` (:mod:`frugalseg.locks`): a process that dies releases it, and the round is
        then resumed.
        """
        lock = FileLock(self.opts.runs_dir / "locks" / f"{self.run_name(strategy, seed, round_)}.lock")
        try:
            lock.acquire()
        except LockHeldError:
            return None
        try:
            return self.round(strategy, seed, round_, annotated)
        finally:
            lock.release()

    def round(self, strategy: str, seed: int, round_: int, annotated: list[str]) -> RoundRecord:
        """One round's record: read when committed (and checked), else trained, scored, suggested, written."""
        from frugalseg.bench.runner import evaluate_run

        path = record_path(self.opts.records_dir, strategy, seed, round_)
        name = self.run_name(strategy, seed, round_)
        ann_path = self.opts.runs_dir / "annotations" / f"{name}.json"
        if path.is_file():
            return self._checked(path, read_record(path), self._config(seed, round_, ann_path), annotated)
        ann = with_masks(self.start(seed), annotated, {"strategy": strategy, "seed": seed, "round": round_,
                                                       "start": self.opts.spec.start, "added": list(annotated)})
        if round_ > 0:  # round 0's run simulates its own (start_config), the same for every strategy
            save_annotations(ann, ann_path, overwrite=True)
        config = self._config(seed, round_, ann_path)
        run = self._train_start(seed, config) if round_ == 0 else self._train(self.opts.runs_dir / name, config, ann)
        summary = evaluate_run(run, self.opts.data_root(), ("last",), self.opts.device)["last"]
        seconds = float(json.loads((run / "summary.json").read_text())["train_seconds"])
        selection, pair = Selection([], []), None
        if round_ < self.opts.spec.rounds:
            selection, pair = self._suggest(run, ann, strategy, seed)
            for warning in selection.warnings:
                self.log(f"[{strategy} s{seed} r{round_}] warning: {warning}")
        rec = RoundRecord(strategy, seed, round_, list(annotated), selection.item_ids, pair,
                          dataclasses.asdict(count_annotations(ann)), summary, seconds, config.to_dict())
        write_text_atomic(path, rec.to_json())
        dice = summary["overall"]["dice"]["mean"]
        self.log(f"[{strategy} s{seed} r{round_}] {len(ann.items)} slices annotated, Dice {dice:.3f}, "
                 f"{len(selection.item_ids)} suggested")
        return rec

    def _config(self, seed: int, round_: int, ann_path: Path) -> RunConfig:
        """Round 0 simulates its start budget in the run (as a bench row); later rounds read their annotation file."""
        data = self.opts.data_root()
        return start_config(self.opts, data, seed) if round_ == 0 else round_config(self.opts, data, seed, ann_path)

    @staticmethod
    def _checked(path: Path, rec: RoundRecord, config: RunConfig, annotated: list[str]) -> RoundRecord:
        from frugalseg.bench.runner import config_differences

        diff = config_differences(comparable(rec.config), comparable(config.to_dict()))
        if diff or rec.annotated != annotated:
            why = "; ".join(diff) if diff else "its annotated slices are not the previous round's"
            raise RecordMismatchError(f"record {path} was made with other settings: {why}. Delete the records of "
                                      "that strategy and seed to run them again, or write elsewhere (--out)")
        return rec

    def _train_start(self, seed: int, config: RunConfig) -> Path:
        """Round 0's finished run: the shared bench row's (trained and recorded as that row), else the loop's own."""
        from frugalseg.bench.runner import record_finished_run, run_dir, train_or_skip

        opts, data = self.opts, self.opts.data_root()
        row = shared_row(opts, data, seed)
        if row is None:
            return self._train(opts.runs_dir / f"start-s{seed}", config, self.start(seed))
        self.log(f"[start s{seed}] round 0 is the run of the bench row {row.label} (same config)")
        train_or_skip(row, seed, data, opts.row_runs_dir, opts.schedule, opts.extra, self.log)
        record_finished_run(row, seed, data, opts.row_runs_dir, opts.row_records_dir, opts.schedule, opts.extra,
                            self.log, opts.device)
        return run_dir(opts.row_runs_dir, row.label, seed)

    def _train(self, run: Path, config: RunConfig, ann: AnnotationFile) -> Path:
        """Train (or resume, or reuse) the round's own run folder on ``ann``."""
        from frugalseg.bench.runner import check_run, finished
        from frugalseg.train import train_run

        last = run / "checkpoints" / "last.pt"
        if finished(run) or last.is_file():
            check_run(run, config)
        if not finished(run):
            resume = last.is_file()
            train_run(config, run, resume=resume, overwrite=not resume, progress=False,
                      run_data=dataclasses.replace(self.data(), annotations=ann))
        return run

    def _suggest(self, run: Path, ann: AnnotationFile, strategy: str, seed: int) -> tuple[Selection, str | None]:
        import torch

        model = None
        if strategy != "random":
            device = torch.device(self.opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            model = load_scoring_model(run / "checkpoints" / "last.pt", device)
        pool = unannotated(self.data().train_items, ann)
        selection = rank_pool(model, pool, self.opts.spec.per_round, strategy, seed, self.opts.spec.allow_adjacent)
        return selection, model.pair if model is not None and strategy == "disagreement" else None


# ----- the command ------------------------------------------------------------------------------------------------
PAGE = "active-learning.md"
FRESH_PAGE = "# Active learning\n"


def recorded(opts: LoopOptions) -> list[RoundRecord]:
    """The committed records of the loop's strategies and seeds, in loop order (missing rounds left out)."""
    out = []
    for seed in opts.seeds:
        for round_ in range(opts.spec.rounds + 1):
            for strategy in opts.spec.strategies:
                path = record_path(opts.records_dir, strategy, seed, round_)
                if path.is_file():
                    out.append(read_record(path))
    return out


def _header(opts: LoopOptions, records: list[RoundRecord]) -> list[str]:
    from frugalseg.bench.provenance import git_commit, machine_description, utc_now

    spec = opts.spec
    trainings = {(r.seed, "start" if r.round == 0 else f"{r.strategy}{r.round}"): r.train_seconds for r in records}
    hours = sum(trainings.values()) / 3600  # round 0 is one training per seed, whatever the strategies recorded
    total = len(opts.seeds) * len(spec.strategies) * (spec.rounds + 1)
    command = shlex.join(["frugalseg", *(sys.argv[1:] if opts.argv is None else opts.argv)])
    return [
        "<!-- Written by `frugalseg bench --active-learning`; do not edit by hand: run the command below again. -->",
        "",
        f"Written on {utc_now()} at commit {git_commit()}; machine: {machine_description(opts.device)}.",
        "",
        f"- loop: `{spec.config}` (schedule `{opts.schedule}`) from budget `{spec.start}`, {spec.rounds} rounds of "
        f"+{spec.per_round} slices with a full mask; strategies {', '.join(spec.strategies)}; "
        f"seeds {' '.join(map(str, opts.seeds))}",
        f"- rounds recorded: {len(records)} of {total} (records: `{opts.records_dir}`); {len(trainings)} training"
        f"{'s' * (len(trainings) != 1)} ({hours:.1f} h)",
        "",
        "```",
        command,
        "```",
    ]


def write_page(opts: LoopOptions, log: Log = print) -> Path:
    """Rewrite the loop's block of ``<out>/active-learning.md`` (and its figure) from the records."""
    from frugalseg.bench.active_learning_page import BLOCK, page_block
    from frugalseg.bench.cost import load_cost_model
    from frugalseg.files import replace_marked_block

    records = recorded(opts)
    model = load_cost_model(opts.cost_model)
    page = Path(opts.out) / PAGE
    replace_marked_block(page, BLOCK, page_block(records, opts, model, _header(opts, records)), FRESH_PAGE)
    log(f"wrote {page} ({len(records)} rounds recorded)")
    return page


def run_active_learning(opts: LoopOptions, page_only: bool = False, log: Log = print) -> Path:
    """Run every round not yet recorded (unless ``page_only``), then write the page."""
    from frugalseg.data.simulate import load_budget

    load_budget(opts.spec.start)  # a bad start budget fails before anything is trained
    if not page_only:
        LoopRunner(opts, log).run()
    return write_page(opts, log)


def plan_text(opts: LoopOptions, jobs: int = 1) -> str:
    """``--list``: the rounds to train and the estimated time (the bench matrix's measured minutes per run)."""
    from frugalseg.bench.matrix import load_matrix
    from frugalseg.bench.runner import finished, run_dir

    spec = opts.spec
    todo = 0
    data = opts.data or "<data>"
    shared = {seed: shared_row(opts, data, seed) for seed in opts.seeds}
    for seed, row in shared.items():
        rounds = [(s, r) for s in spec.strategies for r in range(spec.rounds + 1)]
        missing = [(s, r) for s, r in rounds if not record_path(opts.records_dir, s, seed, r).is_file()]
        trainings = {"start" if r == 0 else f"{s}{r}" for s, r in missing}  # round 0 is one training per seed
        if row is not None and finished(run_dir(opts.row_runs_dir, row.label, seed)):
            trainings.discard("start")
        todo += len(trainings)
    total = len(opts.seeds) * (1 + spec.rounds * len(spec.strategies))
    estimates = load_matrix().estimates
    config = round_config(opts, data, 0, Path("<annotations>"))
    per_run = estimates.minutes_for(config)
    lines = [f"active-learning loop: {spec.config} (schedule {opts.schedule}, {config.train.iterations} iterations) "
             f"from {spec.start}; {spec.rounds} rounds x {len(spec.strategies)} strategies "
             f"({', '.join(spec.strategies)}), +{spec.per_round} masked slices per round; seeds "
             f"{' '.join(map(str, opts.seeds))}",
             f"trainings: {total} in all (round 0 shared by the strategies of a seed), {todo} not recorded yet"]
    rows = sorted({row.label for row in shared.values() if row is not None})
    if rows:
        lines.append(f"round 0 is the run of the bench row {', '.join(rows)} (same config): trained once for both, "
                     "in the rows' run folder, and recorded as that row too")
    if per_run is None:
        lines.append("estimate: none (the bench matrix has no measured minutes for this method and shape)")
    else:
        minutes = todo * (per_run + estimates.eval_minutes / 2)
        lines.append(f"estimate: {todo} x ({per_run:.1f} min training + {estimates.eval_minutes / 2:.2f} min scoring "
                     f"last.pt) = {minutes:.0f} min ({minutes / 60:.1f} h) one run at a time on the CPU the "
                     "matrix's minutes were measured on, plus suggest's scoring of the unannotated slices per round")
        if jobs > 1:
            side = todo * (per_run / estimates.speedup(jobs) + estimates.eval_minutes / 2)
            lines.append(f"with --jobs {jobs}: about {side:.0f} min ({side / 60:.1f} h), the training shared by "
                         f"{jobs} workers at {estimates.speedup(jobs):.1f}x one run's throughput (fewer while a "
                         "worker waits for a round another one holds)")
    return "\n".join(lines)
