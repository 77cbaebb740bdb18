"""Per-volume, per-class segmentation metrics as the semi- and weakly-supervised literature reports them.

SSL4MIS, WSL4MIS and ACTION score each test volume (the 3D stack of its predicted slices) per foreground
class with medpy: ``dc``, ``jc``, ``hd95`` and ``asd``, in voxel units when the data carry no spacing
(the ACDC HDF5 files) and in mm otherwise. frugalseg computes the same quantities:

- Dice ``2|P∩G| / (|P| + |G|)`` and Jaccard ``|P∩G| / |P∪G|`` (MONAI ``compute_dice`` / ``compute_iou``);
- the surfaces and surface distances come from MONAI (``get_edge_surface_distance``: surface = mask XOR its
  binary erosion with the cross-shaped structuring element, i.e. medpy's default ``connectivity=1``;
  exact Euclidean distances, scaled by the spacing) and are reduced the way medpy reduces them:

  * ``hd95`` = 95th percentile of the **pooled** distances of both directions (pred→ref and ref→pred).
    MONAI's ``compute_hausdorff_distance(percentile=95)`` takes instead the larger of the two directed
    95th percentiles, which is never smaller; we follow medpy so that numbers compare with the papers.
  * ``asd`` = mean distance from the **prediction's** surface to the reference's (medpy ``asd(pred, gt)``,
    one-directional): the ASD column of the SSL4MIS/ACTION tables.
  * ``assd`` = mean of the two directed means (medpy ``assd``), the symmetric version, reported beside it.

Empty masks never produce NaN (see :func:`compute_volume_metrics` and docs/evaluation.md): both empty is a
perfect score; one of them empty scores Dice 0 and the volume's diagonal as its distance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "DISTANCE_METRICS",
    "METRICS",
    "VolumeResult",
    "class_names",
    "compute_volume_metrics",
    "empty_distance",
    "summarise",
    "surface_distances",
]

METRICS: tuple[str, ...] = ("dice", "jaccard", "hd95", "asd", "assd")
"""Every per-class metric of a :class:`VolumeResult`, in report order."""

DISTANCE_METRICS: tuple[str, ...] = ("hd95", "asd", "assd")
"""The metrics measured in :attr:`VolumeResult.units` (the others are fractions)."""


@dataclass
class VolumeResult:
    """The scores of one volume, one entry per foreground class (class ``k`` at index ``k - 1``).

    Attributes:
        case_id: the case scored.
        dice, jaccard, hd95, asd, assd: float64 arrays of shape ``(num_classes - 1,)``.
        pred_empty, ref_empty: bool arrays of the same shape: where the prediction / the reference holds
            no voxel of the class (the rows the empty rules decided).
        units: ``"mm"`` when the case has a spacing, else ``"voxel"``.
        spacing: the spacing used, per array axis, or ``None``.
        shape: the shape of the scored label maps.
    """

    case_id: str
    dice: np.ndarray
    jaccard: np.ndarray
    hd95: np.ndarray
    asd: np.ndarray
    assd: np.ndarray
    pred_empty: np.ndarray
    ref_empty: np.ndarray
    units: str = "voxel"
    spacing: tuple[float, ...] | None = None
    shape: tuple[int, ...] = field(default_factory=tuple)

    @property
    def num_foreground(self) -> int:
        """Number of foreground classes scored."""
        return int(self.dice.shape[0])

    def metric(self, name: str) -> np.ndarray:
        """The ``(num_classes - 1,)`` array of metric ``name`` (one of :data:`METRICS`)."""
        if name not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {name!r}")
        return getattr(self, name)


def empty_distance(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """The distance scored when exactly one of prediction and reference is empty: the volume's diagonal.

    ``sqrt(sum((n_i * s_i) ** 2))``, the physical extent of the whole grid, an upper bound of any distance
    between two of its voxels (the convention of the BraTS challenge, 373.13 mm for 240x240x155 at 1 mm). A
    missed structure is thus the worst possible HD95/ASD rather than a NaN that an average would drop, or a 0
    that would reward the miss (ACTION's ``test_2D.py`` returns 0).

    Args:
        shape: the label map's shape.
        spacing: voxel size per axis (mm), or ``None`` for voxel units.
    """
    s = (1.0,) * len(shape) if spacing is None else tuple(float(v) for v in spacing)
    return float(math.sqrt(sum((n * v) ** 2 for n, v in zip(shape, s))))


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two non-empty binary masks (medpy's ``__surface_distances``).

    Args:
        pred: boolean mask, 2D or 3D.
        ref: boolean mask of the same shape.
        spacing: voxel size per axis, or ``None`` (unit spacing).

    Returns:
        ``(pred_to_ref, ref_to_pred)``: for every surface voxel of ``pred`` the distance to the nearest
        surface voxel of ``ref``, and the reverse; float64 1D arrays.
    """
    # MONAI is imported here: importing monai.metrics costs seconds, which a CLI call that never
    # evaluates should not pay.
    from monai.metrics.utils import get_edge_surface_distance

    with warnings.catch_warnings():
        # MONAI 1.5-1.6 itself passes its deprecated ``always_return_as_numpy`` here; nothing for us to change.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        _, dists, _ = get_edge_surface_distance(
            torch.from_numpy(np.ascontiguousarray(pred, dtype=bool)),
            torch.from_numpy(np.ascontiguousarray(ref, dtype=bool)),
            distance_metric="euclidean",
            spacing=None if spacing is None else [float(v) for v in spacing],
            symmetric=True,
            warn_empty=False,
        )
    pred_to_ref, ref_to_pred = list(dists)  # symmetric: both directions
    return (np.asarray(pred_to_ref.cpu(), dtype=np.float64), np.asarray(ref_to_pred.cpu(), dtype=np.float64))


def _overlap(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Dice and Jaccard per foreground class with MONAI (both empty -> 1, ``ignore_empty=False``)."""
    from monai.metrics import compute_dice, compute_iou

    def one_hot(labels: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        return torch.nn.functional.one_hot(t, num_classes).movedim(-1, 0)[None].to(torch.uint8)

    p, r = one_hot(pred), one_hot(ref)
    dice = compute_dice(p, r, include_background=False, ignore_empty=False, num_classes=num_classes)
    iou = compute_iou(p, r, include_background=False, ignore_empty=False)
    return dice[0].double().numpy(), iou[0].double().numpy()


def _foreground_box(pred: np.ndarray, ref: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every non-background voxel of either map (an empty box if there is none)."""
    fg = (pred > 0) | (ref > 0)
    box = []
    for axis in range(fg.ndim):
        hit = np.flatnonzero(fg.any(axis=tuple(a for a in range(fg.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
    return tuple(box)


def compute_volume_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    case_id: str = "",
) -> VolumeResult:
    """Dice, Jaccard, HD95, ASD and ASSD of every foreground class of one volume.

    Empty rules (per class; never NaN):

    =====================  ====  =======  =========================  =========================
    prediction / reference  Dice  Jaccard  HD95                       ASD, ASSD
    =====================  ====  =======  =========================  =========================
    both present            from the masks (medpy definitions, see the module docstring)
    both empty              1     1        0                          0
    exactly one empty       0     0        :func:`empty_distance`     :func:`empty_distance`
    =====================  ====  =======  =========================  =========================

    Args:
        pred: predicted class indices, (D, H, W) or (H, W).
        ref: reference class indices, same shape.
        num_classes: classes including background (class 0 is not scored).
        spacing: voxel size per array axis in mm, or ``None``: distances are then in voxels (the SSL4MIS
            HDF5 files carry no spacing; the papers' numbers are in voxels).
        case_id: carried into the result.

    Raises:
        ValueError: shapes differ, ``spacing`` has the wrong length, or a label lies outside ``[0, num_classes)``.
    """
    pred, ref, spacing = _checked(pred, ref, num_classes, spacing, case_id)
    shape, worst = tuple(pred.shape), empty_distance(pred.shape, spacing)
    # Everything below only looks at foreground voxels, so crop both maps to the box around them. This is
    # exact, not an approximation: voxels outside the box are background in both maps, which is also what
    # the erosion assumes beyond an array's border, and nearest surface points always lie inside the box.
    box = _foreground_box(pred, ref)
    pred, ref = pred[box], ref[box]
    dice, jaccard = _overlap(pred, ref, num_classes)
    hd95, asd, assd, pred_empty, ref_empty = _distances(pred, ref, num_classes, spacing, worst)
    both_empty, one_empty = pred_empty & ref_empty, pred_empty ^ ref_empty
    dice[both_empty] = jaccard[both_empty] = 1.0
    dice[one_empty] = jaccard[one_empty] = 0.0
    result = VolumeResult(case_id, dice, jaccard, hd95, asd, assd, pred_empty, ref_empty,
                          units="voxel" if spacing is None else "mm", spacing=spacing, shape=shape)
    for name in METRICS:
        if not np.isfinite(result.metric(name)).all():  # cannot happen by construction: fail loudly if it does
            raise FloatingPointError(f"{case_id or 'volume'}: non-finite {name} {result.metric(name)}")
    return result


def _checked(pred: np.ndarray, ref: np.ndarray, num_classes: int, spacing: Sequence[float] | None,
             case_id: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]:
    """The label maps as arrays and the spacing as floats, or a ``ValueError`` naming the case and what is off.

    A wrong shape or spacing would otherwise give numbers for the wrong voxels, not an error.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"{case_id or 'volume'}: prediction shape {pred.shape} differs from reference {ref.shape}")
    if spacing is not None:
        spacing = tuple(float(v) for v in spacing)
        if len(spacing) != pred.ndim or any(not v > 0 for v in spacing):
            raise ValueError(f"{case_id or 'volume'}: spacing {spacing} does not fit shape {pred.shape}")
    for name, arr in (("prediction", pred), ("reference", ref)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{case_id or 'volume'}: {name} holds labels outside [0, {num_classes})")
    return pred, ref, spacing


def _distances(pred: np.ndarray, ref: np.ndarray, num_classes: int, spacing: tuple[float, ...] | None,
               worst: float) -> tuple[np.ndarray, ...]:
    """HD95, ASD and ASSD per foreground class, and where the prediction and the reference are empty.

    A class empty on both sides scores 0; empty on one side, ``worst`` (:func:`empty_distance`); else the
    medpy reductions of the surface distances (see the module docstring).

    Returns:
        ``(hd95, asd, assd, pred_empty, ref_empty)``, each of shape ``(num_classes - 1,)``.
    """
    n = num_classes - 1
    hd95, asd, assd = np.zeros(n), np.zeros(n), np.zeros(n)
    pred_empty, ref_empty = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for k in range(1, num_classes):
        p, r = pred == k, ref == k
        pred_empty[k - 1], ref_empty[k - 1] = not p.any(), not r.any()
        if pred_empty[k - 1] and ref_empty[k - 1]:
            continue
        if pred_empty[k - 1] or ref_empty[k - 1]:
            hd95[k - 1] = asd[k - 1] = assd[k - 1] = worst
            continue
        to_ref, to_pred = surface_distances(p, r, spacing)
        hd95[k - 1] = np.percentile(np.concatenate([to_ref, to_pred]), 95)
        asd[k - 1] = to_ref.mean()
        assd[k - 1] = 0.5 * (to_ref.mean() + to_pred.mean())
    return hd95, asd, assd, pred_empty, ref_empty


def class_names(classes: Mapping[int, str] | Sequence[str] | None, n: int) -> list[str]:
    """Names of foreground classes 1..n: from a {index: name} mapping, a list of the n names, or the indices."""
    if classes is None:
        return [str(k) for k in range(1, n + 1)]
    if isinstance(classes, Mapping):
        return [str(classes.get(k, k)) for k in range(1, n + 1)]
    names = [str(c) for c in classes]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names given for {n} foreground classes")
    return names


def summarise(
    results: Iterable[VolumeResult], classes: Mapping[int, str] | Sequence[str] | None = None
) -> dict[str, Any]:
    """Mean and standard deviation over volumes, per class and overall, as the papers' tables report them.

    Per class: mean and (population, ``ddof=0``) std over the volumes. Overall: every volume's scores are
    first averaged over the classes, then mean and std are taken over volumes, so the overall mean is the
    mean of the class means (the papers' "average" column) and the overall std measures spread between
    volumes. Nothing is skipped: a NaN would propagate, not vanish (and :func:`compute_volume_metrics`
    never produces one).

    Args:
        results: per-volume results, all with the same classes and units.
        classes: foreground class names, ``{1: "RV", 2: "Myo", 3: "LV"}`` (a source's ``classes``) or a list.

    Returns:
        ``{"n_volumes", "units", "metrics", "classes": {name: {metric: {"mean", "std"}}},
        "overall": {metric: {"mean", "std"}}, "empty": {name: {"pred": count, "ref": count}}}``, plain
        Python types (JSON-ready).

    Raises:
        ValueError: no results, or results that disagree on the number of classes or the units.
    """
    results = list(results)
    if not results:
        raise ValueError("no volume results to summarise")
    n = results[0].num_foreground
    units = {r.units for r in results}
    if any(r.num_foreground != n for r in results):
        raise ValueError("volume results disagree on the number of classes")
    if len(units) > 1:
        raise ValueError(f"volume results mix units {sorted(units)}: averaging them would be meaningless")
    names = class_names(classes, n)
    per_class: dict[str, dict[str, dict[str, float]]] = {name: {} for name in names}
    overall: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        table = np.stack([r.metric(metric) for r in results])  # (volumes, classes)
        for k, name in enumerate(names):
            per_class[name][metric] = {"mean": float(table[:, k].mean()), "std": float(table[:, k].std())}
        by_volume = table.mean(axis=1)
        overall[metric] = {"mean": float(by_volume.mean()), "std": float(by_volume.std())}
    empty = {
        name: {"pred": int(sum(r.pred_empty[k] for r in results)), "ref": int(sum(r.ref_empty[k] for r in results))}
        for k, name in enumerate(names)
    }
    return {
        "n_volumes": len(results),
        "units": units.pop(),
        "metrics": list(METRICS),
        "classes": per_class,
        "overall": overall,
        "empty": empty,
    }
