"""Whole data sets: check a request, plan who gets what, simulate every item, write the file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.data.annotations import AnnotationFile, Item, save_annotations
from frugalseg.data.simulate.budgets import Budget, assign_patients, choose_slices, load_budget, patient_order
from frugalseg.data.simulate.constants import BUDGET_KINDS, KINDS, SIMULATOR
from frugalseg.data.simulate.marks import annotator_tags, corrupt_boxes, simulate_boxes, simulate_points, simulate_tags
from frugalseg.data.simulate.options import OPTIONS_BY_KIND
from frugalseg.data.simulate.rng import check_seed, item_rng
from frugalseg.data.simulate.scribbles import simulate_scribbles
from frugalseg.data.types import SliceItem
from frugalseg.errors import ConfigError, DataError, OutputExistsError


def _check_label(item: SliceItem, num_classes: int, origin: str | Path) -> np.ndarray:
    if item.label is None:
        raise DataError(origin, f"item {item.item_id!r} has no mask: weak labels are simulated from masks")
    label = np.asarray(item.label)
    if label.ndim != 2:
        raise DataError(origin, f"item {item.item_id!r}: label must be 2D, got shape {label.shape}")
    if label.size and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise DataError(
            origin,
            f"item {item.item_id!r}: label holds classes {int(label.min())}..{int(label.max())} "
            f"but the data has {num_classes} classes",
        )
    return label


def _class_names(classes: Mapping[int, str], num_classes: int) -> dict[str, str]:
    names = {int(k): str(v) for k, v in classes.items() if int(k) != 0}
    for c in range(1, num_classes):
        names.setdefault(c, str(c))
    return {str(c): names[c] for c in sorted(names)}


def _budget_kinds(items: Sequence[SliceItem], plan: Budget, seed: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Each item's kind under ``plan``, and the provenance saying who got what (patients, or sparse slices)."""
    if plan.slices is not None:
        chosen = choose_slices(items, plan.slices, seed)
        picked = {i for ids in chosen.values() for i in ids}
        return {it.item_id: plan.slices.kind if it.item_id in picked else "unlabelled" for it in items}, {
            "slices": chosen
        }
    by_patient = assign_patients(patient_order(items), plan, seed)
    used = [k for k in BUDGET_KINDS if k in set(by_patient.values())]
    return {it.item_id: by_patient[it.patient_id] for it in items}, {
        "patients": {k: sorted(p for p, v in by_patient.items() if v == k) for k in used}
    }


def _simulate_one(
    kind: str, label: np.ndarray, rng: np.random.Generator, options: Any, num_classes: int
) -> tuple[Item, list[int]]:
    """One item's annotation and the indices of its corrupted boxes (empty unless boxes are corrupted)."""
    if kind == "masks":
        return Item(mask=True), []
    if kind == "points":
        return Item(points=simulate_points(label, rng, options)), []
    if kind == "scribbles":
        return Item(scribbles=simulate_scribbles(label, rng, options)), []
    if kind == "boxes":
        boxes = simulate_boxes(label, rng, options)
        corrupted: list[int] = []
        if options.corrupt_fraction:
            boxes, corrupted = corrupt_boxes(boxes, label.shape, num_classes, rng, options)
        tags = annotator_tags(simulate_tags(label), boxes) if options.with_tags else None
        return Item(boxes=boxes, tags=tags), corrupted
    if kind == "tags":
        return Item(tags=simulate_tags(label)), []
    raise ValueError(f"unknown kind {kind!r}")


@dataclass(frozen=True)
class _Request:
    """A simulation request that passed every check needing no data: one kind's options, or a budget."""

    kind: str
    seed: int
    options: Any = None
    """The kind's options record (``None`` with a budget, which carries its own)."""
    budget: Budget | None = None


def _check_request(
    kind: str, seed: object, budget: str | Path | Mapping[str, Any] | Budget | None, options: Mapping[str, Any]
) -> _Request:
    """Refuse an unknown kind, a bad seed or option, a budget with another kind or none with ``budget``.

    :func:`simulate_file` runs it before reading the data folder (a typo costs no read), and
    :func:`simulate_items` for callers that come with their items.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown simulation kind {kind!r} (known: {', '.join(KINDS)})")
    checked_seed = check_seed(seed)
    if kind != "budget":
        if budget is not None:
            raise ConfigError(f"a budget (--budget) is only used with kind 'budget', not {kind!r}")
        return _Request(kind, checked_seed, options=OPTIONS_BY_KIND[kind].from_mapping(options, f"{kind} options"))
    if budget is None:
        raise ConfigError("kind 'budget' needs a budget file (--budget FILE)")
    if options:
        raise ConfigError("a budget carries its options in its own 'options' block; do not pass options")
    return _Request(kind, checked_seed, budget=load_budget(budget))


def _plan(
    items: Sequence[SliceItem], request: _Request
) -> tuple[dict[str, str] | None, dict[str, Any], dict[str, Any]]:
    """Each item's kind, each kind's options, and the provenance that says so.

    One kind for every item (the kinds are then ``None``); or, under a budget, each item's kind from its
    patient (or its slice), the options of the kinds used, and who got what.
    """
    if request.budget is None:
        return None, {request.kind: request.options}, {"options": request.options.as_dict()}
    plan = request.budget
    kinds, who = _budget_kinds(items, plan, request.seed)
    used = [k for k in BUDGET_KINDS if k in set(kinds.values())]
    kind_options = {k: plan.kind_options(k) for k in used}
    recorded = {k: o.as_dict() for k, o in kind_options.items() if o is not None}
    return kinds, kind_options, {"budget": plan.as_dict(), "options": recorded, **who}


def _annotate(
    items: Sequence[SliceItem],
    kinds: Mapping[str, str] | None,
    kind_options: Mapping[str, Any],
    request: _Request,
    num_classes: int,
    origin: str | Path,
) -> tuple[dict[str, Item], dict[str, list[int]]]:
    """Every item's annotation (unlabelled ones get none), and the indices of the corrupted boxes by item.

    Each item draws from its own generator (:func:`item_rng`), so the order of ``items`` changes nothing.
    """
    out: dict[str, Item] = {}
    corrupted: dict[str, list[int]] = {}
    for item in items:
        this = request.kind if kinds is None else kinds[item.item_id]
        if this == "unlabelled":
            continue
        if item.item_id in out:
            raise DataError(origin, f"item id {item.item_id!r} occurs twice")
        label = _check_label(item, num_classes, origin)
        out[item.item_id], bad = _simulate_one(
            this, label, item_rng(request.seed, item.item_id), kind_options[this], num_classes
        )
        if bad:
            corrupted[item.item_id] = bad
    return out, corrupted


def simulate_items(
    items: Sequence[SliceItem],
    classes: Mapping[int, str],
    num_classes: int,
    kind: str,
    seed: int,
    budget: str | Path | Mapping[str, Any] | Budget | None = None,
    origin: str | Path = "<data>",
    **options: Any,
) -> AnnotationFile:
    """Simulate an annotation file from the masks of ``items``.

    Args:
        items: 2D items with labels (the source's ``training_slices()``); their order only matters
            for ``masks.first_patients`` in a budget.
        classes: foreground class names by index (background 0 implicit).
        num_classes: number of classes including background; labels must lie in [0, num_classes).
        kind: ``points``, ``scribbles``, ``boxes``, ``tags`` or ``budget``.
        seed: non-negative run seed.
        budget: for ``kind="budget"``: a budget file, a shipped budget's name, a mapping, or a :class:`Budget`.
        origin: what errors name as the data (the data folder).
        **options: the kind's options (:class:`PointOptions`, :class:`ScribbleOptions`, :class:`BoxOptions`);
            a budget carries its own per-kind options instead.

    Returns:
        The annotation file; items are keyed by id. Unlabelled patients of a budget get no item.

    Raises:
        ConfigError: unknown kind or option, bad budget, negative seed.
        DataError: an item that needs simulating has no label or a label out of range.
    """
    request = _check_request(kind, seed, budget, options)
    kinds, kind_options, planned = _plan(items, request)
    box_options = kind_options.get("boxes")
    if (
        box_options is not None
        and box_options.corrupt_fraction
        and box_options.corruption != "shift"
        and num_classes < 3
    ):
        raise ConfigError(f"boxes: corruption {box_options.corruption!r} needs two foreground classes")
    out, corrupted = _annotate(items, kinds, kind_options, request, num_classes, origin)
    provenance = {"simulated_from": "masks", "simulator": SIMULATOR, "kind": kind, "seed": request.seed, **planned}
    if box_options is not None and box_options.corrupt_fraction:
        # Which boxes are wrong, so that an evaluation can compare them with the clean ones (never read to train).
        provenance["corrupted_boxes"] = dict(sorted(corrupted.items()))
    return AnnotationFile(classes=_class_names(classes, num_classes), items=out, provenance=provenance)


def simulate_file(
    data_root: str | Path,
    kind: str,
    seed: int,
    out: str | Path,
    overwrite: bool = False,
    budget: str | Path | Mapping[str, Any] | Budget | None = None,
    **options: Any,
) -> AnnotationFile:
    """``frugalseg simulate``: read a data folder, simulate ``kind`` from its training masks, write ``out``.

    Everything that can be refused is refused before the data is read: an existing
    ``out`` (unless ``overwrite``), an unknown kind or option, a bad budget file.

    Args:
        data_root: any supported source folder (recognised from its contents).
        kind: ``points``, ``scribbles``, ``boxes``, ``tags`` or ``budget``.
        seed: non-negative seed; the same seed gives the same file bytes.
        out: the annotation file to write.
        overwrite: replace an existing ``out``.
        budget: with ``kind="budget"``: a budget file or the name of a shipped one (``masks3_boxes_tags``).
        **options: the kind's options (see :func:`simulate_items`).

    Returns:
        The annotations written.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is false.
        ConfigError: bad kind, options, seed or budget.
        DataError: the data folder cannot be read or lacks masks.
    """
    out = _check_out(Path(out), overwrite)
    request = _check_request(kind, seed, budget, options)
    from frugalseg.data.sources import open_source

    source = open_source(data_root)
    items = source.training_slices()
    if not items:
        raise DataError(Path(data_root), "no training items to simulate from")
    ann = simulate_items(
        items, source.classes, source.num_classes, kind, seed, budget=request.budget, origin=data_root, **options
    )
    save_annotations(ann, out, overwrite=overwrite)
    return ann


def _check_out(out: Path, overwrite: bool) -> Path:
    """Refuse an annotation file path that is a folder, exists (unless ``overwrite``) or lies inside a file."""
    if out.is_dir():
        raise OutputExistsError(out, "it is a folder; give --out the annotation file to write (e.g. clicks.json)")
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputExistsError(parent, f"it is a file, so {out} cannot be written inside it")
    return out
