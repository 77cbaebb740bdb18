"""Annotation budgets: which patients (or which slices of every volume) get which kind."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from frugalseg.data.simulate.constants import BUDGET_KINDS
from frugalseg.data.simulate.options import OPTIONS_BY_KIND
from frugalseg.data.simulate.rng import check_seed, named_rng
from frugalseg.data.types import SliceItem
from frugalseg.data.volumes import volume_slices
from frugalseg.errors import ConfigError, describe_validation


class _BudgetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaskSpec(_BudgetModel):
    """Which patients get full masks: the first k in the data's order, or a seeded random fraction."""

    first_patients: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, ge=0, le=1)


SLICE_RULES = ("even", "random")
"""How a sparse budget picks the slices of a volume (:class:`SliceSpec` ``rule``)."""


class SliceSpec(_BudgetModel):
    """A sparse budget: ``kind`` on ``per_volume`` slices of every volume, the volume's other slices unlabelled.

    Attributes:
        per_volume: slices annotated per volume (a volume with fewer gets all of them).
        rule: ``even``: the centres of ``per_volume`` equal runs of the volume's slices, slice index
            ⌊(2i + 1)·S / (2n)⌋ for i < n of S slices in slice order (one slice: the middle one; the seed
            plays no part); ``random``: n slices drawn uniformly without replacement by a generator
            seeded by the run seed and the volume's id.
        kind: the annotation the chosen slices get (masks, points, scribbles, boxes or tags).
    """

    per_volume: int = Field(ge=1)
    rule: str = "even"
    kind: str = "masks"

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if v not in SLICE_RULES:
            raise ValueError(f"unknown rule {v!r} (known: {', '.join(SLICE_RULES)})")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        annotated = [k for k in BUDGET_KINDS if k != "unlabelled"]
        if v not in annotated:
            raise ValueError(f"unknown kind {v!r} (known: {', '.join(annotated)})")
        return v


class Budget(_BudgetModel):
    """An annotation budget: full masks for some patients, the rest split among kinds in given proportions.

    Or, with ``slices``, a sparse budget: a few slices of every volume annotated, the others unlabelled
    (exclusive with ``masks`` and ``rest``).

    Attributes:
        masks: which patients get full masks (none when absent).
        rest: kind → weight for the other patients, normalised to proportions (default: all unlabelled).
        slices: a sparse budget's rule (:class:`SliceSpec`); every patient is then treated alike.
        options: kind → options of that kind (as ``--kind`` would take them).
    """

    masks: MaskSpec | None = None
    rest: dict[str, float] = Field(default_factory=lambda: {"unlabelled": 1.0})
    slices: SliceSpec | None = None
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sparse_alone(self) -> Budget:
        if self.slices is not None and ({"masks", "rest"} & self.model_fields_set):
            raise ValueError("slices (a sparse budget) cannot be combined with masks or rest")
        return self

    @field_validator("masks")
    @classmethod
    def _one_rule(cls, v: MaskSpec | None) -> MaskSpec | None:
        if v is not None and (v.first_patients is None) == (v.fraction is None):
            raise ValueError("give exactly one of first_patients or fraction")
        return v

    @field_validator("rest")
    @classmethod
    def _rest(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(BUDGET_KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)} (known: {', '.join(BUDGET_KINDS)})")
        if any(w < 0 or not math.isfinite(w) for w in v.values()):
            raise ValueError("weights must be finite and >= 0")
        if not v or sum(v.values()) <= 0:
            raise ValueError("at least one kind needs a positive weight")
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for kind, opts in v.items():
            if kind not in OPTIONS_BY_KIND:
                raise ValueError(f"no options for kind {kind!r} (kinds with options: {', '.join(OPTIONS_BY_KIND)})")
            OPTIONS_BY_KIND[kind].from_mapping(opts, f"options.{kind}")
        return v

    def kind_options(self, kind: str) -> Any:
        """The resolved options record of ``kind`` (defaults where the budget says nothing)."""
        if kind not in OPTIONS_BY_KIND:
            return None
        return OPTIONS_BY_KIND[kind].from_mapping(self.options.get(kind), f"options.{kind}")

    def as_dict(self) -> dict[str, Any]:
        """The budget as written in provenance (unset fields left out)."""
        return self.model_dump(exclude_none=True)


def budget_path(name: str | Path) -> Path:
    """A budget file path, or the name (with or without ``.yaml``) of one shipped in ``configs/budgets/``."""
    p = Path(name)
    if p.is_file():
        return p
    shipped = Path(__file__).resolve().parents[2] / "configs" / "budgets"
    for candidate in (shipped / p.name, shipped / f"{p.name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(f.stem for f in shipped.glob("*.yaml"))) if shipped.is_dir() else "none"
    raise ConfigError(f"{name}: no such budget file, and no budget shipped under that name (shipped: {known})")


def load_budget(source: str | Path | Mapping[str, Any] | Budget) -> Budget:
    """Read a budget from a YAML/JSON file, a shipped budget's name, or a mapping; :class:`ConfigError` if bad."""
    if isinstance(source, Budget):
        return source
    where = "budget"
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        path = budget_path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the budget: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a budget is a mapping (masks, rest, options), got {type(data).__name__}")
    try:
        return Budget.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_validation(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def patient_order(items: Sequence[SliceItem]) -> list[str]:
    """Patients in order of first appearance (SSL4MIS: the order of ``train_slices.list``)."""
    return list(dict.fromkeys(it.patient_id for it in items))


def choose_slices(items: Sequence[SliceItem], spec: SliceSpec, seed: int) -> dict[str, list[str]]:
    """The item ids a sparse budget annotates, by volume (case id), each in slice order (see :class:`SliceSpec`)."""
    seed = check_seed(seed)
    chosen: dict[str, list[str]] = {}
    for case, slices in volume_slices(items).items():
        s, n = len(slices), min(spec.per_volume, len(slices))
        if spec.rule == "even":
            picks = [((2 * i + 1) * s) // (2 * n) for i in range(n)]
        else:
            rng = named_rng(seed, f"slices:{case}")
            picks = sorted(int(k) for k in rng.choice(s, size=n, replace=False))
        chosen[case] = [slices[k].item_id for k in picks]
    return chosen


def _largest_remainder(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` by ``weights`` with Hamilton's method, in exact arithmetic; ties go to BUDGET_KINDS order."""
    kinds = [k for k in BUDGET_KINDS if weights.get(k, 0) > 0]
    exact = {k: Fraction(repr(float(weights[k]))) for k in kinds}
    norm = sum(exact.values())
    quota = {k: exact[k] * total / norm for k in kinds}
    counts = {k: math.floor(q) for k, q in quota.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(kinds, key=lambda k: (-(quota[k] - counts[k]), BUDGET_KINDS.index(k)))
    for k in by_remainder[:left]:
        counts[k] += 1
    return counts


def assign_patients(patients: Sequence[str], budget: Budget, seed: int) -> dict[str, str]:
    """Give every patient one kind of annotation (all its slices share it).

    Masks go to the first ``first_patients`` patients of ``patients`` (the data's order),
    or to a seeded ``fraction`` of them (rounded half up). The others are sorted by id,
    shuffled with a generator seeded by ``seed``, and cut into consecutive blocks, one
    per kind in :data:`BUDGET_KINDS` order, sized by the largest-remainder method.

    Returns:
        patient id → kind.
    """
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    patients = list(patients)
    if len(set(patients)) != len(patients):
        raise ValueError("patients must be distinct")
    masked: list[str] = []
    if budget.masks is not None:
        if budget.masks.first_patients is not None:
            k = budget.masks.first_patients
            if k > len(patients):
                raise ConfigError(f"budget: masks.first_patients = {k} but the data has {len(patients)} patients")
            masked = patients[:k]
        elif budget.masks.fraction is not None:
            k = math.floor(Fraction(repr(float(budget.masks.fraction))) * len(patients) + Fraction(1, 2))
            rng = named_rng(seed, "budget.masks")
            pool = sorted(patients)
            masked = [pool[i] for i in rng.permutation(len(pool))[:k]]
    out = dict.fromkeys(masked, "masks")
    rest = sorted(p for p in patients if p not in out)
    rng = named_rng(seed, "budget.rest")
    shuffled = [rest[i] for i in rng.permutation(len(rest))]
    start = 0
    for kind, n in _largest_remainder(len(rest), budget.rest).items():
        for p in shuffled[start : start + n]:
            out[p] = kind
        start += n
    return {p: out[p] for p in patients}
