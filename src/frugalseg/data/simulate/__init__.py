"""Weak labels simulated from full masks, reproducibly, as the papers did.

Every benchmark row trains on annotations derived from ACDC's full masks: one
click per class (PSCV), skeleton scribbles (WSL4MIS), tight boxes per connected
component (MLDS, DII+DCR), image-level tags (MLDS), or a per-patient mix of them
with a few full masks (a *budget*). ``docs/simulation.md`` says which paper's
protocol each kind follows and where we had to reconstruct it.

Determinism: each item draws from its own generator, seeded by the run seed and
a SHA-256 hash of the item id (never Python's salted ``hash``). The output is
therefore independent of the order of the items, of how they are split over
workers, and of the machine; the same seed gives the same file bytes. Budgets
shuffle patients with a generator of their own, over patient ids sorted first,
so only ``masks.first_patients`` depends on the data's order, as it must (it
*is* the SSL4MIS convention "the first k patients of train_slices.list").

The package, one module per job: ``constants`` (version stamp, kinds), ``rng`` (the
seeded generators), ``options`` (each kind's options), ``marks`` (clicks, tags and
boxes of one slice), ``scribbles``, ``budgets`` (who gets which kind) and ``dataset``
(whole data sets and the annotation file).
"""

from __future__ import annotations

from frugalseg.data.simulate.budgets import (
    SLICE_RULES,
    Budget,
    SliceSpec,
    assign_patients,
    budget_path,
    choose_slices,
    load_budget,
    patient_order,
)
from frugalseg.data.simulate.constants import BUDGET_KINDS, CORRUPTIONS, KINDS, SIMULATOR
from frugalseg.data.simulate.dataset import simulate_file, simulate_items
from frugalseg.data.simulate.marks import annotator_tags, corrupt_boxes, simulate_boxes, simulate_points, simulate_tags
from frugalseg.data.simulate.options import BoxOptions, PointOptions, ScribbleOptions, TagOptions
from frugalseg.data.simulate.rng import item_rng
from frugalseg.data.simulate.scribbles import simulate_scribbles

__all__ = [
    "BUDGET_KINDS",
    "CORRUPTIONS",
    "KINDS",
    "SIMULATOR",
    "BoxOptions",
    "Budget",
    "PointOptions",
    "SLICE_RULES",
    "ScribbleOptions",
    "SliceSpec",
    "TagOptions",
    "annotator_tags",
    "assign_patients",
    "budget_path",
    "choose_slices",
    "corrupt_boxes",
    "item_rng",
    "load_budget",
    "patient_order",
    "simulate_boxes",
    "simulate_file",
    "simulate_items",
    "simulate_points",
    "simulate_scribbles",
    "simulate_tags",
]
