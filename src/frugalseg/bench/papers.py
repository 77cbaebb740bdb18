"""The papers' reported numbers (``paper_results.yaml``), each tied to a cited source, for the side tables.

These numbers are the papers', on their split and schedule, and are shown beside ours only in tables of
their own: frugalseg has no ACDC test patients and its quick schedule is not theirs, so a paper's 87.5 and
our 0.80 are context, not a comparison. Loading refuses an entry without a source, a source without a
citation, split or schedule, and a budget the matrix does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from frugalseg.bench.yaml_models import load_yaml_model, shipped_file
from frugalseg.errors import ConfigError

__all__ = ["PaperEntry", "PaperResults", "PaperSource", "load_paper_results", "paper_results_path"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperSource(_Strict):
    """Where a set of numbers comes from, and under which protocol they were measured."""

    citation: str = Field(min_length=1)
    table: str = Field(min_length=1)
    shared_doc: str = Field(min_length=1, description="the brief in ../shared/ the numbers were copied from")
    provenance: str = Field(min_length=1)
    split: str = Field(min_length=1)
    schedule: str = Field(min_length=1)
    dice_unit: Literal["percent", "fraction"]
    distance_unit: str = Field(min_length=1)


class PaperEntry(_Strict):
    """One method's reported numbers under one budget (``mean`` = the class average; per class if given)."""

    budget: str
    row: str | None = Field(description="the frugalseg row it stands beside; null: context only")
    method: str = Field(min_length=1)
    source: str
    dice: dict[str, float] = Field(default_factory=dict)
    hd95: dict[str, float] = Field(default_factory=dict)
    asd: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_numbers(self) -> PaperEntry:
        if not (self.dice or self.hd95 or self.asd):
            raise ValueError(f"entry {self.method!r} ({self.budget}) gives no number")
        return self


class PaperResults(_Strict):
    sources: dict[str, PaperSource]
    entries: tuple[PaperEntry, ...]
    missing: dict[str, str] = Field(default_factory=dict, description="per budget: which paper gives no number")

    @model_validator(mode="after")
    def _sources_exist(self) -> PaperResults:
        for entry in self.entries:
            if entry.source not in self.sources:
                raise ValueError(f"entry {entry.method!r} ({entry.budget}) cites unknown source {entry.source!r}")
        return self

    def for_budget(self, budget: str) -> list[PaperEntry]:
        return [e for e in self.entries if e.budget == budget]


def paper_results_path() -> Path:
    return shipped_file("paper_results.yaml")


def load_paper_results(
    path: str | Path | None = None, budgets: set[str] | None = None, rows: set[str] | None = None
) -> PaperResults:
    """Read the papers' numbers (default: the shipped file); :class:`ConfigError` naming the file.

    Args:
        path: the YAML file.
        budgets: the matrix's budget names; an entry or ``missing`` note for another budget is an error.
        rows: the matrix's row labels; an entry standing beside another row is an error.
    """
    path = Path(path) if path is not None else paper_results_path()
    results = load_yaml_model(path, PaperResults, "the papers' numbers")
    if budgets is not None:
        unknown = sorted(({e.budget for e in results.entries} | set(results.missing)) - budgets)
        if unknown:
            raise ConfigError(f"{path}: budgets {unknown} are not in the bench matrix")
    if rows is not None:
        unknown = sorted({e.row for e in results.entries if e.row is not None} - rows)
        if unknown:
            raise ConfigError(f"{path}: rows {unknown} are not in the bench matrix")
    return results
