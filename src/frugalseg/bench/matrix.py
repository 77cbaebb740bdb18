"""The benchmark matrix: which runs exist (rows), which tables show them (budgets), what they cost in time.

A **row** is one training run spelled as ``label=config[,key=value...]`` (the form
``frugalseg bench --row`` takes, and the form the configs' comment headers and
``docs/methods/*.md`` use for baselines). A **budget** is one table of ``docs/results.md``: the rows
trained on that annotation budget, split into baselines and the methods compared with them. A row listed
by two budgets is trained once (``supervised7`` is the masks-only baseline of both ``masks7`` and
``masks7_boxes``). A **note** is a caveat on a row that the results page prints under every table listing
it, before and after the row is trained (``medsam_boxes``: the model that makes its labels may have seen the
data). The matrix itself is data (``matrix.yaml`` beside this module), so that adding a row or a note is a
line of YAML, not code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from frugalseg.bench.yaml_models import load_yaml_model, shipped_file
from frugalseg.config import RunConfig, load_config
from frugalseg.errors import ConfigError

__all__ = ["Budget", "Estimates", "Matrix", "Row", "load_matrix", "parse_row", "row_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Row(_Strict):
    """One training run: a shipped config (or a YAML path) and dotted overrides, under a label.

    The label names the run folder (``<runs>/<label>-s<seed>``), so it must be usable as a file name.
    """

    label: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    config: str = Field(min_length=1)
    overrides: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """``config[,key=value...]``, as written in the matrix and on the command line."""
        return ",".join([self.config, *self.overrides])


def parse_row(text: str, label: str | None = None) -> Row:
    """Parse ``label=config[,key=value...]`` (or ``config[,...]`` with ``label`` given).

    Raises:
        ConfigError: no label or no config, or a label that is not a plain file name.
    """
    if label is None:
        label, _, spec = text.partition("=")
    else:
        spec = text
    config, *overrides = spec.split(",")
    if not label or not config:
        raise ConfigError(f"row {text!r}: expected label=config[,key=value...]")
    try:
        return Row(label=label, config=config, overrides=tuple(overrides))
    except ValidationError as exc:
        raise ConfigError(f"row {text!r}: label {label!r} must be letters, digits and _ . + - only") from exc


def row_config(row: Row, data: str | Path | None, schedule: str, seed: int, extra: Sequence[str] = ()) -> RunConfig:
    """The validated config of ``row`` for one seed.

    Overrides apply in the order the bench has always passed them to ``frugalseg train``:
    ``data.root``, ``schedule``, ``train.seed``, the row's own, then ``extra`` (the bench's ``--set``).
    """
    head = ([f"data.root={data}"] if data is not None else []) + [f"schedule={schedule}", f"train.seed={seed}"]
    return load_config(row.config, [*head, *row.overrides, *extra])


class Budget(_Strict):
    """One table: the rows trained on one annotation budget."""

    name: str
    budget: str = Field(description="the budget file (configs/budgets/) the budget's own rows simulate")
    title: str
    baselines: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    include: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.md$",
        description="a Markdown file beside the page (a path under the page's folder) that a script writes and "
                    "the page prints under this budget's table, e.g. results/medsam_quality_masks7_boxes.md",
    )

    @property
    def rows(self) -> tuple[str, ...]:
        return (*self.baselines, *self.methods)


class Reference(_Strict):
    iterations: int = Field(gt=0)
    patch_size: tuple[int, int]
    batch_size: int = Field(gt=0)


class Estimates(_Strict):
    """Measured wall minutes of one run per method at the reference shape (the quick schedule)."""

    reference: Reference
    minutes: dict[str, float] = Field(
        description="per method, or per 'method option=value ...' for a variant that costs otherwise (the most "
                    "specific entry whose options all match the config's wins)")
    eval_minutes: float = Field(ge=0)
    cores: int = Field(default=1, gt=0, description="cores of the CPU the minutes were measured on")
    parallel_efficiency: float = Field(
        default=1.0, gt=0, le=1,
        description="throughput of each of several single-thread runs side by side, relative to one run on all cores",
    )

    def speedup(self, jobs: int) -> float:
        """Training throughput of ``--jobs`` runs side by side relative to one run (on the measured CPU).

        More jobs than cores gain nothing (each job gets one thread and the cores are shared), so the jobs
        that count are capped at :attr:`cores`; one job is the reference.
        """
        if jobs <= 1:
            return 1.0
        return min(jobs, self.cores) * self.parallel_efficiency

    def minutes_for(self, config: RunConfig) -> float | None:
        """Estimated training minutes of ``config``; ``None`` for an unmeasured method or another shape.

        The shape is what a training step sees: the crop when the config trains on crops of its grid.
        """
        ref = self.reference
        per_run = self._method_minutes(config)
        seen = config.data.crop_size or config.data.patch_size
        same_shape = tuple(seen) == ref.patch_size and config.train.batch_size == ref.batch_size
        if per_run is None or not same_shape:
            return None
        return per_run * config.train.iterations / ref.iterations

    def _method_minutes(self, config: RunConfig) -> float | None:
        """The minutes of the config's method: of its most specific variant entry whose options all match."""
        best: tuple[int, float] | None = None
        for key, minutes in self.minutes.items():
            method, *settings = key.split()
            if method != config.method.name:
                continue
            wanted = dict(setting.split("=", 1) for setting in settings)
            if all(str(config.method.options.get(k)).lower() == v.lower() for k, v in wanted.items()):
                if best is None or len(wanted) > best[0]:
                    best = (len(wanted), minutes)
        return None if best is None else best[1]


class Matrix(_Strict):
    """Rows by label, budgets in table order, time estimates, and the caveats the results page prints."""

    rows: dict[str, str]
    budgets: tuple[Budget, ...]
    estimates: Estimates
    notes: dict[str, str] = Field(
        default_factory=dict,
        description="a caveat per row label (one paragraph of Markdown), printed under every table that lists "
                    "the row, finished or not: what a reader must know before comparing its numbers",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Matrix:
        for budget in self.budgets:
            unknown = [r for r in budget.rows if r not in self.rows]
            if unknown:
                raise ValueError(f"budget {budget.name!r} lists unknown rows {unknown}")
            if len(set(budget.rows)) != len(budget.rows):
                raise ValueError(f"budget {budget.name!r} lists a row twice")
        used = {r for b in self.budgets for r in b.rows}
        unused = sorted(set(self.rows) - used)
        if unused:
            raise ValueError(f"rows {unused} are in no budget")
        climbing = [b.name for b in self.budgets if b.include and ".." in b.include.split("/")]
        if climbing:
            raise ValueError(f"budgets {climbing} include a file outside the page's folder")
        stray = sorted(set(self.notes) - set(self.rows))
        if stray:
            raise ValueError(f"notes name unknown rows {stray}")
        empty = sorted(label for label, text in self.notes.items() if not text.strip())
        if empty:
            raise ValueError(f"notes of rows {empty} are empty")
        names = [b.name for b in self.budgets]
        if len(set(names)) != len(names):
            raise ValueError(f"budget names repeat: {names}")
        specs: dict[str, str] = {}
        for label, spec in self.rows.items():
            if spec in specs:
                raise ValueError(f"rows {specs[spec]!r} and {label!r} are the same run ({spec}): list one row "
                                 "in both budgets instead")
            specs[spec] = label
        return self

    def row(self, label: str) -> Row:
        return parse_row(self.rows[label], label=label)

    def ordered_rows(self, only: Sequence[str] | None = None) -> list[Row]:
        """Rows in table order, each once; ``only`` keeps those labels (an unknown one is an error)."""
        order = list(dict.fromkeys(r for b in self.budgets for r in b.rows))
        if only:
            unknown = [o for o in only if o not in self.rows]
            if unknown:
                raise ConfigError(f"--only {' '.join(unknown)}: not a row of the matrix (rows: {', '.join(order)})")
            order = [r for r in order if r in set(only)]
        return [self.row(label) for label in order]

    def budgets_of(self, label: str) -> list[Budget]:
        return [b for b in self.budgets if label in b.rows]


def matrix_path() -> Path:
    return shipped_file("matrix.yaml")


def load_matrix(path: str | Path | None = None) -> Matrix:
    """Read the matrix (default: the one shipped with the package); :class:`ConfigError` naming the file."""
    return load_yaml_model(Path(path) if path is not None else matrix_path(), Matrix, "the bench matrix")
