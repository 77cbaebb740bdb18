"""The simulated active-learning loop: train, suggest k slices, annotate them from the masks, train again.

Each strategy (``suggest``'s entropy, disagreement, random) follows its own trajectory per seed from the
same round 0 (a start budget, one training per seed shared by all strategies, and with the bench row
of the same config when the matrix has one). A round is one training
from scratch on the annotations so far, scored on the validation volumes (``last.pt``), followed by the
strategy's ``per_round`` suggestions, which the next round gets with full masks (the simulated annotator
is the data's own masks). Every round adds the same number of masked slices, so the same annotator-seconds
for every strategy under the cost model.

Resumable like the bench: each round leaves a small JSON record (the ids annotated so far, the suggestions,
the annotation counts, the evaluation summary, the config) under ``<out>/results/active_learning/``,
committed with the page; a round with a record is never trained again, and the next round's annotations
are rebuilt from it. A round killed mid-training resumes from its run folder's ``last.pt``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from frugalseg.active.scores import STRATEGIES
from frugalseg.bench.matrix import Row
from frugalseg.bench.options import CommonOptions
from frugalseg.bench.yaml_models import load_yaml_model, shipped_file
from frugalseg.config import RunConfig, load_config
from frugalseg.data.annotations import AnnotationFile, Item
from frugalseg.errors import FrugalsegError

__all__ = ["LoopOptions", "LoopSpec", "RecordMismatchError", "RoundRecord", "comparable", "load_loop_spec",
           "loop_spec_path", "read_record", "record_path", "round_config", "shared_row", "start_config",
           "with_masks"]

RECORD_FORMAT = "frugalseg.al-round/1"
RECORDS_FOLDER = Path("results") / "active_learning"
Log = Callable[[str], None]


class LoopSpec(BaseModel):
    """What the loop trains and how it acquires (``active_learning.yaml`` beside this module documents each key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str = Field(min_length=1)
    overrides: tuple[str, ...] = ()
    start: str = Field(min_length=1)
    rounds: int = Field(ge=1)
    per_round: int = Field(ge=1)
    strategies: tuple[str, ...] = STRATEGIES
    allow_adjacent: bool = False

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in STRATEGIES]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"strategies must be distinct names among {', '.join(STRATEGIES)}, got {list(v)}")
        return v


def loop_spec_path() -> Path:
    return shipped_file("active_learning.yaml")


def load_loop_spec(path: str | Path | None = None) -> LoopSpec:
    """Read a loop spec (default: the shipped one); :class:`ConfigError` naming the file and the key."""
    return load_yaml_model(Path(path) if path is not None else loop_spec_path(), LoopSpec, "the active-learning spec")


@dataclass(kw_only=True)
class LoopOptions(CommonOptions):
    """What ``frugalseg bench --active-learning`` was asked: the loop's spec and the bench's own arguments.

    Its runs and records lie in folders of their own (``<runs>/active_learning``, ``<out>/results/active_learning``),
    apart from the rows'.
    """

    spec: LoopSpec

    @property
    def runs_dir(self) -> Path:
        return super().runs_dir / "active_learning"

    @property
    def records_dir(self) -> Path:
        return Path(self.out) / RECORDS_FOLDER

    @property
    def row_runs_dir(self) -> Path:
        """The bench rows' run folders, where a round 0 shared with a row trains (:func:`shared_row`)."""
        return super().runs_dir


class RecordMismatchError(FrugalsegError):
    """A committed round record was made with other settings than the loop now asks for."""


@dataclass(frozen=True)
class RoundRecord:
    """One round of one strategy and seed, as committed (see the module docstring)."""

    strategy: str
    seed: int
    round: int
    annotated: list[str]
    suggested: list[str]
    pair: str | None
    counts: dict[str, int]
    summary: dict[str, Any]
    train_seconds: float
    config: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"format": RECORD_FORMAT, **dataclasses.asdict(self)}, indent=1, sort_keys=True) + "\n"


def record_path(records: Path, strategy: str, seed: int, round_: int) -> Path:
    return records / f"{strategy}-s{seed}-r{round_}.json"


def read_record(path: Path) -> RoundRecord:
    """Read a round record; :class:`RecordMismatchError` naming the file if it is not one."""
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
        if tree.pop("format") != RECORD_FORMAT:
            raise ValueError(f"format is not {RECORD_FORMAT}")
        return RoundRecord(**tree)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecordMismatchError(f"{path}: not an active-learning round record ({exc}); delete it to run the "
                                  "round again") from exc


def round_config(opts: LoopOptions, data: str, seed: int, annotations: Path) -> RunConfig:
    """The config one round trains: the spec's config for the schedule and seed, on the round's annotation file."""
    head = [f"data.root={data}", f"schedule={opts.schedule}", f"train.seed={seed}"]
    tail = ["data.simulate=null", f"data.annotations={annotations}", *opts.extra]
    return load_config(opts.spec.config, [*head, *opts.spec.overrides, *tail])


def start_config(opts: LoopOptions, data: str, seed: int) -> RunConfig:
    """Round 0's config: the spec's config on its start budget, simulated in the run as a bench row simulates it.

    Spelled as the bench matrix spells a budget row (``data.simulate.kind=budget``, ``data.simulate.budget=...``),
    so that a matrix row with the same meaning has the same config and trains round 0 for the loop
    (:func:`shared_row`).
    """
    head = [f"data.root={data}", f"schedule={opts.schedule}", f"train.seed={seed}"]
    start = ["data.simulate.kind=budget", f"data.simulate.budget={opts.spec.start}"]
    return load_config(opts.spec.config, [*head, *opts.spec.overrides, *start, *opts.extra])


def shared_row(opts: LoopOptions, data: str, seed: int) -> Row | None:
    """The bench matrix's row whose run is round 0 (same config, field by field), or ``None``.

    Round 0 trains the start budget from scratch, which is often a row of the results page already
    (``supervised_sparse`` for the shipped loop): that row's run then serves both, trained once, recorded by
    the bench, and the loop's suggestions start from its ``last.pt``.
    """
    from frugalseg.bench.matrix import load_matrix, row_config
    from frugalseg.bench.runner import config_differences

    wanted = start_config(opts, data, seed).to_dict()
    matrix = load_matrix()
    for label in matrix.rows:
        row = matrix.row(label)
        if not config_differences(row_config(row, data, opts.schedule, seed, opts.extra).to_dict(), wanted):
            return row
    return None


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config without what depends on where the loop ran (the data folder, the round's annotation file path)."""
    data = {k: v for k, v in config.get("data", {}).items() if k not in ("root", "annotations")}
    return {**config, "data": data}


def with_masks(start: AnnotationFile, added: Sequence[str], provenance: dict[str, Any]) -> AnnotationFile:
    """``start`` plus a full mask on each of ``added`` (the simulated annotator copies the data's masks)."""
    items = dict(start.items)
    for item_id in added:
        if item_id in items and not items[item_id].is_empty:
            raise ValueError(f"{item_id} is annotated already")
        items[item_id] = Item(mask=True)
    return AnnotationFile(classes=start.classes, items=items,
                          provenance={**start.provenance, "active_learning": provenance})

