"""Finished runs made by hand (the files a trained and scored run leaves, with chosen numbers, no training), their
records, and fake child processes for ``frugalseg bench --jobs``."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from frugalseg.bench.records import Panel, record_dir, write_record
from frugalseg.evaluation.reports import CSV_COLUMNS

CLASSES = ("RV", "Myo", "LV")


def fake_summary(dice: float, hd95: float = 5.0, asd: float = 1.0, spread: float = 0.0) -> dict[str, Any]:
    """An eval summary whose class c (0, 1, 2) scores ``dice + (c - 1) * spread`` (so the class mean is ``dice``)."""
    classes = {}
    for k, name in enumerate(CLASSES):
        off = (k - 1) * spread
        classes[name] = {"dice": {"mean": dice + off, "std": 0.01}, "jaccard": {"mean": 0.5, "std": 0.0},
                         "hd95": {"mean": hd95 + off, "std": 0.0}, "asd": {"mean": asd + off, "std": 0.0},
                         "assd": {"mean": asd, "std": 0.0}}
    overall = {"dice": {"mean": dice, "std": 0.02}, "jaccard": {"mean": 0.5, "std": 0.0},
               "hd95": {"mean": hd95, "std": 0.0}, "asd": {"mean": asd, "std": 0.0}, "assd": {"mean": asd, "std": 0.0}}
    return {"n_volumes": 2, "units": "voxel", "metrics": ["dice", "jaccard", "hd95", "asd", "assd"],
            "classes": classes, "overall": overall, "empty": {}}


def fake_run(runs: Path, label: str, seed: int, dice: float, train_seconds: float = 600.0,
             config: dict[str, Any] | None = None, annotations: dict[str, Any] | None = None,
             best_dice: float | None = None) -> Path:
    """A finished, scored run folder ``<runs>/<label>-s<seed>`` (summary.json, eval_best/, eval_last/)."""
    run = runs / f"{label}-s{seed}"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"iterations": 3000, "best_dice": dice, "best_iteration": 3000,
                                                  "train_seconds": train_seconds, "world_size": 1}))
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    if annotations is not None:
        (run / "annotations.json").write_text(json.dumps(annotations))
    for which, value in (("best", dice if best_dice is None else best_dice), ("last", dice)):
        out = run / f"eval_{which}"
        out.mkdir()
        (out / "summary.json").write_text(json.dumps(fake_summary(value)))
        header = ",".join(CSV_COLUMNS)
        rows = [f"case{v},{k + 1},{name},{value},0.5,5.0,1.0,1.0,False,False,voxel"
                for v in range(2) for k, name in enumerate(CLASSES)]
        (out / "per_volume.csv").write_text("\n".join([header, *rows]) + "\n")
    return run


def fake_record(records: Path, runs: Path, label: str, seed: int, dice: float, config: dict[str, Any],
                panel: Panel | None = None, keep_run: bool = False, **run_kwargs: Any) -> Path:
    """The record of a :func:`fake_run` (whose folder is then deleted unless ``keep_run``), as the runner writes it."""
    import shutil

    run = fake_run(runs, label, seed, dice, config=config, **run_kwargs)
    meta = {"label": label, "row": label, "seed": seed, "schedule": "quick", "data": "/data", "run": run.as_posix(),
            "written": "2026-01-01 00:00 UTC", "commit": "abc1234"}
    dest = write_record(run, record_dir(records, label, seed), meta, panel)
    if not keep_run:
        shutil.rmtree(run)
    return dest


class FakeChildren:
    """A fake :class:`subprocess.Popen`: each child ends after ``polls`` polls with its code, logging a line.

    Records every launch (command, environment, session) and the most children alive at once.
    """

    def __init__(self, polls: dict[str, int] | None = None, codes: dict[str, int] | None = None) -> None:
        self.polls, self.codes = polls or {}, codes or {}
        self.launched: list[FakeChildren.Child] = []
        self.alive: set[str] = set()
        self.max_alive = 0

    def __call__(self, command, stdin=None, stdout=None, stderr=None, env=None, start_new_session=False):
        child = FakeChildren.Child(self, command, Path(stdout.name), env, start_new_session)
        self.launched.append(child)
        self.alive.add(child.name)
        self.max_alive = max(self.max_alive, len(self.alive))
        return child

    @property
    def order(self) -> list[str]:
        return [c.name for c in self.launched]

    class Child:
        def __init__(self, owner, command, log, env, new_session):
            self.owner, self.command, self.log, self.env, self.new_session = owner, command, log, env, new_session
            options = dict(a[2:].split("=", 1) for a in command[3:] if not a.startswith("--set="))
            self.name = f"{options['row'].split('=', 1)[0]} s{options['seed']}"
            self.options = options
            self.left = owner.polls.get(self.name, 1)
            self.code: int | None = None
            self.terminated = False

        def _end(self, code: int) -> int:
            self.code = code
            self.owner.alive.discard(self.name)
            return code

        def poll(self):
            if self.code is not None:
                return self.code
            self.left -= 1
            if self.left > 0:
                return None
            code = self.owner.codes.get(self.name, 0)
            with self.log.open("a") as fh:
                fh.write("Traceback (most recent call last):\nRuntimeError: boom\n" if code else "trained\n")
            return self._end(code)

        def terminate(self):
            self.terminated = True
            self._end(-signal.SIGTERM)

        def kill(self):
            self._end(-signal.SIGKILL)

        def wait(self, timeout=None):
            return self.code


class RecordingTrainer:
    """Stands in for the engine: records how it was called, writes what a finished run leaves."""

    calls: list[dict] = []

    def __init__(self, config, run_dir, resume=False, overwrite=False, progress=True, **_):
        self.config, self.run_dir = config, run_dir
        RecordingTrainer.calls.append({"seed": config.train.seed, "resume": resume, "overwrite": overwrite,
                                       "run_dir": run_dir})

    def run(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.config.to_dict()))
        (self.run_dir / "summary.json").write_text(json.dumps({"train_seconds": 12.0}))
