"""The options of each simulated kind, checked when built (unknown keys and bad values are errors)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from frugalseg.data.simulate.constants import CORRUPTIONS
from frugalseg.errors import ConfigError


class _Options:
    """Shared behaviour of the per-kind option records: built from a mapping, unknown keys are errors."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "options") -> Any:
        values = dict(values or {})
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]  # subclasses are dataclasses
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]


def _need_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class PointOptions(_Options):
    """Clicks, PSCV's protocol (docs/simulation.md): one uniform pixel per class present in the slice.

    Attributes:
        include_background: click the background too (default; without it partial CE never sees background).
    """

    include_background: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.include_background, bool):
            raise ValueError(f"include_background must be true or false, got {self.include_background!r}")


@dataclass(frozen=True)
class ScribbleOptions(_Options):
    """Scribbles, the WSL4MIS generator (Luo et al., MICCAI 2022; ``code/scribbles_generator.py``).

    Attributes:
        include_background: scribble the background too (its skeleton, as WSL4MIS does).
        erosion: (low, high) erosion iterations before skeletonising a region larger than
            ``erosion_min_area``; the count is ceil(low + u·(high − low)), u ~ U[0, 1). WSL4MIS's
            function default is (4, 10); (1, 2) is what its script ran for WORD and our default,
            because ACDC's myocardium is a ring only a few pixels thick at the stored resolution.
        erosion_min_area: regions with more pixels than this are eroded first (WSL4MIS: 900).
        min_branch: besides the largest skeleton component, components with more than this many
            pixels are walked too (WSL4MIS: 15).
        dilation: 3×3 dilations of the walked path (WSL4MIS: 1, a stroke about 3 pixels wide).
        perturb_min_area: regions with more pixels than this get their scribble shifted and rotated
            (WSL4MIS: 1000), imitating an imprecise hand.
        max_shift: shift of up to ± this many pixels along each axis (WSL4MIS: 6).
        max_rotation: rotation about the image centre by up to ± this many degrees (WSL4MIS: 15).
    """

    include_background: bool = True
    erosion: tuple[int, int] = (1, 2)
    erosion_min_area: int = 900
    min_branch: int = 15
    dilation: int = 1
    perturb_min_area: int = 1000
    max_shift: int = 6
    max_rotation: float = 15.0

    def __post_init__(self) -> None:
        if not isinstance(self.include_background, bool):
            raise ValueError(f"include_background must be true or false, got {self.include_background!r}")
        ero = tuple(self.erosion) if isinstance(self.erosion, (list, tuple)) else None
        if ero is None or len(ero) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in ero):
            raise ValueError(f"erosion must be [low, high] integers, got {self.erosion!r}")
        if not 0 <= ero[0] <= ero[1]:
            raise ValueError(f"erosion must satisfy 0 <= low <= high, got {list(ero)}")
        object.__setattr__(self, "erosion", ero)
        for name in ("erosion_min_area", "min_branch", "dilation", "perturb_min_area", "max_shift"):
            _need_int(name, getattr(self, name), 0)
        if isinstance(self.max_rotation, bool) or not isinstance(self.max_rotation, (int, float)):
            raise ValueError(f"max_rotation must be a number of degrees, got {self.max_rotation!r}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"max_rotation must lie in [0, 180] degrees, got {self.max_rotation}")
        object.__setattr__(self, "max_rotation", float(self.max_rotation))


@dataclass(frozen=True)
class BoxOptions(_Options):
    """Boxes: the tight box of every connected component of every foreground class (MLDS; docs/simulation.md).

    Attributes:
        connectivity: 8 (default: pixels touching at a corner are one object) or 4.
        min_size: components with fewer pixels get no box (default 1: every component is boxed).
            A dropped component breaks "class c lies inside its boxes", so keep 1 for the paper rows.
        jitter: move each box side by a uniform integer in [−jitter, jitter] pixels, clipped to the
            image (robustness experiments; 0, the default, gives tight boxes and draws no random numbers).
        with_tags: also write the item's tags. Boxes are drawn exhaustively, so a class without a box
            is absent; saying so explicitly keeps a box-annotated slice with no foreground from looking
            unlabelled, and lets the candidate map remove absent classes (MLDS treats them as negatives).
        corrupt_fraction: probability that a box is corrupted (noisy-weak-label experiments, DII + DCR);
            the corrupted boxes are listed in the file's provenance (``corrupted_boxes``) so that an
            evaluation can tell them apart. 0, the default, corrupts nothing and draws no random numbers.
        corruption: what a corrupted box suffers: ``shift`` (moved, see ``corrupt_shift``), ``class``
            (another foreground class, drawn uniformly) or ``mixed`` (either, with probability 1/2).
        corrupt_shift: a shifted box moves by this fraction of its own height and width, in a uniformly
            drawn direction, then back inside the image if it left it (its size is kept).
    """

    connectivity: int = 8
    min_size: int = 1
    jitter: int = 0
    with_tags: bool = True
    corrupt_fraction: float = 0.0
    corruption: str = "shift"
    corrupt_shift: float = 0.5

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8) or isinstance(self.connectivity, bool):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity!r}")
        _need_int("min_size", self.min_size, 1)
        _need_int("jitter", self.jitter, 0)
        if not isinstance(self.with_tags, bool):
            raise ValueError(f"with_tags must be true or false, got {self.with_tags!r}")
        for name in ("corrupt_fraction", "corrupt_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.corrupt_fraction <= 1.0:
            raise ValueError(f"corrupt_fraction must lie in [0, 1], got {self.corrupt_fraction}")
        if self.corrupt_shift <= 0.0:
            raise ValueError(f"corrupt_shift must be positive, got {self.corrupt_shift}")
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {', '.join(CORRUPTIONS)}, got {self.corruption!r}")

    def as_dict(self) -> dict[str, Any]:
        """The options as recorded in provenance; the corruption options only when boxes are corrupted.

        Leaving them out at their default keeps the files simulated before they existed byte-identical.
        """
        out = super().as_dict()
        if not self.corrupt_fraction:
            for name in ("corrupt_fraction", "corruption", "corrupt_shift"):
                out.pop(name)
        return out


@dataclass(frozen=True)
class TagOptions(_Options):
    """Image-level tags: the foreground classes present in the slice. No options."""


OPTIONS_BY_KIND: dict[str, type[_Options]] = {
    "points": PointOptions,
    "scribbles": ScribbleOptions,
    "boxes": BoxOptions,
    "tags": TagOptions,
}
