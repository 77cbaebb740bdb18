"""Annotation cost in annotator-seconds, counted from what an annotation file actually holds.

A budget's cost is not typed per budget: it is the sum, over the run's ``annotations.json``, of each
annotation's time from a cost model (``cost_model.yaml`` beside this module; docs/annotation-cost.md
says where each default comes from and cites the studies). So a budget whose
simulation changes (more boxes, fewer clicks) is costed as it was really simulated, and a user's own
timings replace ours with ``frugalseg bench --cost-model FILE``. A run's record keeps the counts
(:class:`AnnotationCounts`), not the annotation file, and the model is applied to them when the page is
written (:func:`counts_cost`).

What is counted (K = the number of foreground classes the file declares, 3 for ACDC):

- a slice with ``mask: true``: K structure outlines (``mask_structure`` each);
- every point and every scribble: one ``click`` / ``scribble`` (background clicks included: an annotator
  makes them too);
- every box: one ``box``;
- a slice with ``tags``: K yes/no decisions (``tag`` each), whatever the tags say;
- every slice with any annotation: one ``slice_overhead``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from frugalseg.bench.yaml_models import load_yaml_model, shipped_file
from frugalseg.data.annotations import AnnotationFile, load_annotations

__all__ = [
    "AnnotationCounts",
    "Cost",
    "CostEntry",
    "CostModel",
    "annotation_cost",
    "count_annotations",
    "counts_cost",
    "cost_model_path",
    "load_cost_model",
    "run_annotation_cost",
]

Bound = Literal["seconds", "low", "high"]


class CostEntry(BaseModel):
    """Seconds for one annotation of a kind, the range to sweep, and what the figure rests on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(ge=0)
    low: float = Field(ge=0)
    high: float = Field(ge=0)
    unit: str = Field(min_length=1)
    rests_on: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> CostEntry:
        if not self.low <= self.seconds <= self.high:
            raise ValueError(f"need low <= seconds <= high, got {self.low} / {self.seconds} / {self.high}")
        return self


class CostModel(BaseModel):
    """One :class:`CostEntry` per annotation kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mask_structure: CostEntry
    click: CostEntry
    box: CostEntry
    scribble: CostEntry
    tag: CostEntry
    slice_overhead: CostEntry


@dataclass(frozen=True)
class AnnotationCounts:
    """How many annotations of each kind a file holds."""

    classes: int
    masks: int = 0
    points: int = 0
    scribbles: int = 0
    boxes: int = 0
    tagged: int = 0
    annotated: int = 0

    def seconds(self, model: CostModel, bound: Bound = "seconds") -> float:
        """Annotator-seconds under ``model`` (its default figures, or the ``low`` / ``high`` end of each range)."""

        def s(entry: CostEntry) -> float:
            return float(getattr(entry, bound))

        return (self.masks * self.classes * s(model.mask_structure) + self.points * s(model.click)
                + self.scribbles * s(model.scribble) + self.boxes * s(model.box)
                + self.tagged * self.classes * s(model.tag) + self.annotated * s(model.slice_overhead))


@dataclass(frozen=True)
class Cost:
    """A file's cost: the default estimate, its range, and the counts it came from."""

    seconds: float
    low: float
    high: float
    counts: AnnotationCounts


def count_annotations(annotations: AnnotationFile) -> AnnotationCounts:
    """Count masks, points, scribbles, boxes, tagged and annotated slices of an annotation file."""
    items = [it for it in annotations.items.values() if not it.is_empty]
    return AnnotationCounts(
        classes=len(annotations.classes),
        masks=sum(it.mask for it in items),
        points=sum(len(it.points) for it in items),
        scribbles=sum(len(it.scribbles) for it in items),
        boxes=sum(len(it.boxes) for it in items),
        tagged=sum(it.tags is not None for it in items),
        annotated=len(items),
    )


def counts_cost(counts: AnnotationCounts, model: CostModel) -> Cost:
    """The cost of annotations already counted (a run record keeps the counts, not the annotation file)."""
    return Cost(counts.seconds(model), counts.seconds(model, "low"), counts.seconds(model, "high"), counts)


def annotation_cost(annotations: AnnotationFile, model: CostModel) -> Cost:
    return counts_cost(count_annotations(annotations), model)


def run_annotation_cost(path: str | Path, model: CostModel) -> Cost | None:
    """Cost of the annotation file at ``path`` (a run's ``annotations.json``); ``None`` if there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return annotation_cost(load_annotations(path), model)


def cost_model_path() -> Path:
    return shipped_file("cost_model.yaml")


def load_cost_model(path: str | Path | None = None) -> CostModel:
    """Read a cost model (default: the shipped one); :class:`ConfigError` naming the file and the bad key."""
    return load_yaml_model(Path(path) if path is not None else cost_model_path(), CostModel, "the cost model")
