r"""Multi-label deep supervision (MLDS; Reiß et al., CVPR 2021, "Every Annotation Counts").

A U-Net with deep-supervision heads predicts class logits at every decoder scale. *Ordinary* deep
supervision down-samples the label map by nearest neighbour to each head's grid and trains the
head with a softmax cross-entropy: a coarse cell then gets the class of one of its pixels, so
small or thin structures vanish from the coarse targets and a cell that holds several classes is
forced to pick one. MLDS instead **max-pools** each class's indicator map to the head's grid, so a
coarse cell is positive for *every* class that occurs anywhere in it (a multi-hot target), and
trains each head with a per-class **sigmoid binary cross-entropy**. The official code
(``Simael/mlds-unet`` @ f541501, ``loss_function.py::compute_mlds``) computes, for full masks::

    T^l_b[c]  = maxpool_{H×W → H_l×W_l}( 1[y_b = c] )                    multi-hot target of head l
    L_MLDS    = Σ_l Σ_b  1/(C·H_l·W_l) Σ_{c,u,v} BCE( σ(o^l_b[c,u,v]), T^l_b[c,u,v] )

i.e. BCE per cell, **mean over (C, H_l, W_l) per image, summed over the batch and over the heads**
(``reduction="sum"``, the default here). ``reduction="mean"`` divides the batch sum by the number of
images that carry any target instead, so that the term does not grow with the batch size.

Weak labels as constraints
--------------------------
frugalseg carries every annotation as a candidate-label map ``K`` (B, C, H, W) of booleans (which
classes a pixel may still take; ``DESIGN.md``). Max-pooling ``K`` tells, per coarse cell, which
classes *may* occur in it; a class that may occur nowhere in the cell is a **certain negative**. A
pixel whose candidate set is a singleton {c} (a mask pixel, a click, a scribble pixel) makes c a
**certain positive** of its cell. So, at head l::

    S_b[c]    = K_b[c] ∧ (Σ_c' K_b[c'] = 1)                        singleton pixels of class c
    pos^l     = maxpool(S) ∨ maxpool(E)   (E: extra positives, e.g. boxes at coarse heads, else 0)
    known^l   = pos^l ∨ ¬maxpool(K)                                 certain positive or certain negative
    L^l       = Σ_b 1/(C·H_l·W_l) Σ_{c,u,v} known^l · BCE( σ(o^l), pos^l )

For a full mask ``K`` is the one-hot label, ``known`` is everywhere true and this is exactly the
official loss. For a box of class c, ``K[c]`` is false outside the box, so every coarse cell that
does not touch the box is a certain negative for c at every scale; for an absent image-level tag,
``K[c]`` is false everywhere. Cells of unknown status contribute nothing, and the normaliser stays
``C·H_l·W_l``, so a certain cell of a weak image weighs what a cell of a masked image weighs.

Boxes also give positives, but only approximately: a tight box of c contains some pixel of c in
each of its rows and columns, so at a grid coarse enough for the box to cover few cells, the
pooled box is close to the pooled mask. :func:`box_positive_map` extracts the boxed regions; the
method passes them as ``E`` to the coarsest heads only (``mlds`` option ``box_positive_heads``).

Global (image-level) labels are the max-pool of the label map over the whole image;
:func:`global_tag_loss` compares them with the global max-pooling of a head's logits, so the
network learns "c is somewhere" from a tag without being told where.

:func:`ordinary_deep_supervision_loss` is the ablation the paper argues against: nearest-neighbour
down-sampled (singleton) labels and softmax cross-entropy at every head, with the same reductions.

All losses are computed in fp32 with autocast disabled and are 0 (still attached to the logits,
never NaN) when nothing in the batch is known.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from frugalseg.choices import StrEnum

__all__ = [
    "MLDSActivation",
    "MLDSReduction",
    "box_positive_map",
    "global_tag_loss",
    "max_pool_map",
    "multilabel_deep_supervision_loss",
    "multilabel_head_loss",
    "multilabel_targets",
    "nearest_downsample_map",
    "ordinary_deep_supervision_loss",
    "singleton_map",
]


class MLDSReduction(StrEnum):
    """How per-image head losses are combined over the batch (heads are always summed, as officially)."""

    SUM = "sum"  # official compute_mlds: sum over the images of the batch
    MEAN = "mean"  # the sum divided by the number of images that carry any target (batch-size independent)


class MLDSActivation(StrEnum):
    """What turns a head's logits into per-class probabilities (official ``normalization_function``)."""

    SIGMOID = "sigmoid"  # official default: independent per-class probabilities (multi-label)
    SOFTMAX = "softmax"  # the official code's alternative: probabilities that sum to 1 over classes


# ---------------------------------------------------------------------------------------------------------------
# Target maps.
# ---------------------------------------------------------------------------------------------------------------


def _check_maps(maps: Tensor, name: str) -> None:
    if maps.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W); got shape {tuple(maps.shape)}")
    if maps.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor; got {maps.dtype}")


def max_pool_map(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Adaptive max-pooling of boolean maps to ``size``: a cell is true where any of its pixels is.

    The official code down-scales targets with ``AdaptiveMaxPool2d(output_size=head size)``; for sizes
    that divide the input this is max-pooling with kernel = stride = the scale factor.

    Args:
        maps: (B, C, H, W) bool.
        size: (h, w) of the head's grid.

    Returns:
        (B, C, h, w) bool.
    """
    _check_maps(maps, "maps")
    h, w = int(size[0]), int(size[1])
    if (h, w) == tuple(maps.shape[-2:]):
        return maps
    return F.adaptive_max_pool2d(maps.float(), (h, w)) > 0.5


def nearest_downsample_map(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour down-sampling of boolean maps to ``size`` (ordinary deep supervision).

    PyTorch's ``mode="nearest"`` keeps, for output cell (u, v), the input pixel
    ``(floor(u·H/h), floor(v·W/w))``: for a factor-2 grid the top-left pixel of each 2×2 block, so a
    structure one pixel wide on odd rows or columns disappears.
    """
    _check_maps(maps, "maps")
    h, w = int(size[0]), int(size[1])
    if (h, w) == tuple(maps.shape[-2:]):
        return maps
    return F.interpolate(maps.float(), size=(h, w), mode="nearest") > 0.5


def singleton_map(candidates: Tensor) -> Tensor:
    """``S[b, c, p]``: pixel p of image b is certainly class c (its candidate set is exactly {c}).

    Args:
        candidates: (B, C, H, W) bool candidate-label map.

    Returns:
        (B, C, H, W) bool, at most one true class per pixel.
    """
    _check_maps(candidates, "candidates")
    return candidates & (candidates.sum(dim=1, keepdim=True) == 1)


def box_positive_map(candidates: Tensor, box_label: Tensor) -> Tensor:
    """The regions where a boxed class may lie: ``E[b, c] = K[b, c] ∧ inside_b`` for each class c ≥ 1 with a box.

    ``box_label`` is the dataset's weak box mask: the class of a box inside it, 0 elsewhere in the
    image, −1 outside the image (after a rotation) and everywhere for an image without boxes. A class
    *has a box* in image b where its id occurs in ``box_label[b]``. Its candidate map, restricted to
    the image, is then the union of its boxes (the candidate map already removes it outside them),
    minus the pixels that a click or a mask assigns to another class. Background never has a box.

    Max-pooled to a coarse grid, ``E`` approximates the pooled true mask (a tight box holds the class
    in each of its rows and columns), so the method uses it as positives at the coarsest heads only.

    Args:
        candidates: (B, C, H, W) bool candidate-label map.
        box_label: (B, H, W) int64 weak box mask as above.

    Returns:
        (B, C, H, W) bool, all false for images without boxes and for class 0.
    """
    _check_maps(candidates, "candidates")
    if box_label.shape != candidates.shape[:1] + candidates.shape[2:]:
        raise ValueError(f"box_label must be (B, H, W) matching candidates {tuple(candidates.shape)}; "
                         f"got {tuple(box_label.shape)}")
    classes = torch.arange(candidates.shape[1], device=box_label.device)
    boxed = (box_label.flatten(1).unsqueeze(1) == classes.view(1, -1, 1)).any(dim=2)  # (B, C)
    boxed[:, 0] = False  # box_label is 0 outside the boxes: background has no box
    inside = (box_label >= 0).unsqueeze(1)
    return candidates & inside & boxed[:, :, None, None]


def multilabel_targets(
    candidates: Tensor, size: Sequence[int], extra_positives: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Multi-hot target and "is known" mask of one head of grid ``size`` (module docstring)::

        pos   = maxpool(S) ∨ maxpool(E)        S = singleton pixels, E = ``extra_positives``
        known = pos ∨ ¬maxpool(K)

    Args:
        candidates: (B, C, H, W) bool candidate-label map ``K``.
        size: (h, w) of the head.
        extra_positives: (B, C, H, W) bool pixels that make their cell positive although their
            candidate set is not a singleton (boxes at coarse heads); must lie inside ``candidates``.

    Returns:
        ``(target, known)``, both (B, C, h, w) bool; ``target`` implies ``known``.
    """
    positive = max_pool_map(singleton_map(candidates), size)
    if extra_positives is not None:
        if extra_positives.shape != candidates.shape:
            raise ValueError(f"extra_positives must have the shape of candidates {tuple(candidates.shape)}; "
                             f"got {tuple(extra_positives.shape)}")
        positive = positive | max_pool_map(extra_positives & candidates, size)
    possible = max_pool_map(candidates, size)
    return positive, positive | ~possible


# ---------------------------------------------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------------------------------------------


def _binary_cross_entropy(logits: Tensor, target: Tensor, activation: MLDSActivation) -> Tensor:
    """Per-cell ``−[t log p + (1 − t) log(1 − p)]`` with p the sigmoid (or softmax over dim 1) of ``logits``.

    The sigmoid path works from the logits (``binary_cross_entropy_with_logits``), which equals the
    official ``BCELoss(sigmoid(o), t)`` wherever the latter's −100 clamp of the logarithms is inactive
    (|o| below about 100) and stays exact beyond. The softmax path is the official computation itself,
    ``binary_cross_entropy(softmax(o), t)`` (a softmax has no such logit form).
    """
    if activation == MLDSActivation.SIGMOID:
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return F.binary_cross_entropy(torch.softmax(logits, dim=1), target, reduction="none")


def _reduce(per_image: Tensor, supervised: Tensor, reduction: MLDSReduction) -> Tensor:
    """Sum of per-image losses, divided by the number of supervised images for ``mean``."""
    total = per_image.sum()
    if reduction == MLDSReduction.MEAN:
        total = total / supervised.sum().clamp_min(1).to(total.dtype)
    return total


def multilabel_head_loss(
    logits: Tensor,
    target: Tensor,
    known: Tensor,
    *,
    activation: str | MLDSActivation = MLDSActivation.SIGMOID,
    reduction: str | MLDSReduction = MLDSReduction.SUM,
) -> Tensor:
    """BCE of one head on its known cells: ``Σ_b 1/(C·h·w) Σ_{c,u,v} known · BCE(p, target)`` (``sum``).

    Args:
        logits: (B, C, h, w) head logits.
        target: (B, C, h, w) bool multi-hot target.
        known: (B, C, h, w) bool, cells whose target is certain.
        activation: ``"sigmoid"`` (official default) or ``"softmax"``.
        reduction: ``"sum"`` over the batch (official) or ``"mean"`` over the images with a known cell.

    Returns:
        A fp32 scalar.
    """
    act = MLDSActivation.parse(activation, "activation")
    red = MLDSReduction.parse(reduction, "reduction")
    if target.shape != logits.shape or known.shape != logits.shape:
        raise ValueError(f"target and known must have the shape of logits {tuple(logits.shape)}; "
                         f"got {tuple(target.shape)} and {tuple(known.shape)}")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        per_cell = _binary_cross_entropy(logits.float(), target.float(), act) * known
        per_image = per_cell.flatten(1).sum(dim=1) / per_cell[0].numel()
        return _reduce(per_image, known.flatten(1).any(dim=1), red)


def multilabel_deep_supervision_loss(
    deep_logits: Sequence[Tensor],
    candidates: Tensor,
    *,
    box_positives: Tensor | None = None,
    box_positive_heads: int = 0,
    activation: str | MLDSActivation = MLDSActivation.SIGMOID,
    reduction: str | MLDSReduction = MLDSReduction.SUM,
) -> Tensor:
    """MLDS over every head: ``Σ_l`` :func:`multilabel_head_loss` of the targets of :func:`multilabel_targets`.

    With ``candidates`` the one-hot label of full masks this is the official ``compute_mlds``.

    Args:
        deep_logits: per-head logits (B, C, h_l, w_l), **coarse to fine** (``UNetOutput.deep``).
        candidates: (B, C, H, W) bool candidate-label map at the input resolution.
        box_positives: (B, C, H, W) bool, :func:`box_positive_map`; used on the first
            ``box_positive_heads`` heads (the coarsest).
        box_positive_heads: how many of the coarsest heads take ``box_positives`` as positives.
        activation, reduction: see :func:`multilabel_head_loss`.

    Returns:
        A fp32 scalar (0, attached to the logits, when no cell of the batch is known).

    Raises:
        ValueError: no head, a head larger than the input, or mismatched batch/class sizes.
    """
    _check_heads(deep_logits, candidates)
    if box_positive_heads < 0:
        raise ValueError(f"box_positive_heads must be >= 0; got {box_positive_heads}")
    total = deep_logits[0].sum().float() * 0.0
    for level, logits in enumerate(deep_logits):
        extra = box_positives if level < box_positive_heads else None
        target, known = multilabel_targets(candidates, logits.shape[-2:], extra)
        total = total + multilabel_head_loss(logits, target, known, activation=activation, reduction=reduction)
    return total


def ordinary_deep_supervision_loss(
    deep_logits: Sequence[Tensor],
    candidates: Tensor,
    *,
    reduction: str | MLDSReduction = MLDSReduction.SUM,
) -> Tensor:
    """Ordinary deep supervision, the ablation of MLDS: nearest-neighbour labels, softmax cross-entropy::

        K^l   = nearest(K, h_l × w_l)                 candidate map sampled at one pixel per cell
        L     = Σ_l Σ_b 1/(h_l·w_l) Σ_{u,v : |K^l_b(u,v)| = 1} −log softmax(o^l_b)[y^l_b(u,v), u, v]

    Only cells whose sampled pixel is a singleton are supervised (a mask pixel, a click that happens
    to be sampled, a pseudo-label); box and tag constraints cannot be written as one class per cell and
    give nothing here. The per-image normaliser (all cells) and the batch reduction are those of
    :func:`multilabel_head_loss`, so that the two differ only in target and activation.

    Args:
        deep_logits: per-head logits (B, C, h_l, w_l), coarse to fine.
        candidates: (B, C, H, W) bool candidate-label map.
        reduction: ``"sum"`` over the batch or ``"mean"`` over the images with a labelled cell.

    Returns:
        A fp32 scalar.
    """
    red = MLDSReduction.parse(reduction, "reduction")
    _check_heads(deep_logits, candidates)
    total = deep_logits[0].sum().float() * 0.0
    for logits in deep_logits:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            single = singleton_map(nearest_downsample_map(candidates, logits.shape[-2:]))
            labelled = single.any(dim=1)
            target = single.to(torch.uint8).argmax(dim=1)
            per_cell = F.cross_entropy(logits.float(), target, reduction="none") * labelled
            per_image = per_cell.flatten(1).sum(dim=1) / per_cell[0].numel()
            total = total + _reduce(per_image, labelled.flatten(1).any(dim=1), red)
    return total


def global_tag_loss(
    logits: Tensor,
    presence: Tensor,
    *,
    activation: str | MLDSActivation = MLDSActivation.SIGMOID,
    reduction: str | MLDSReduction = MLDSReduction.SUM,
) -> Tensor:
    """Image-level (global) label loss: BCE between the global max-pooling of a head and the presence vector::

        g_b[c] = max_{u,v} p_b[c, u, v]            (sigmoid: = σ(max_{u,v} o_b[c, u, v]))
        L_tag  = Σ_b 1/C Σ_{c : presence_b[c] ≠ −1} BCE(g_b[c], presence_b[c])

    A global label is the label map max-pooled to a single cell, so this is the MLDS head loss at a
    1×1 grid; classes of unknown presence (−1) are skipped, the normaliser stays C.

    Args:
        logits: (B, C, h, w) logits of one head (the method uses the coarsest).
        presence: (B, C) integer, 1 present, 0 absent, −1 unknown.
        activation, reduction: see :func:`multilabel_head_loss`.

    Returns:
        A fp32 scalar.
    """
    act = MLDSActivation.parse(activation, "activation")
    red = MLDSReduction.parse(reduction, "reduction")
    if logits.dim() != 4 or presence.shape != logits.shape[:2]:
        raise ValueError(f"presence must be (B, C) matching logits {tuple(logits.shape)}; got {tuple(presence.shape)}")
    known = presence >= 0
    target = (presence == 1).float()
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = logits.float()
        if act == MLDSActivation.SIGMOID:
            per_class = F.binary_cross_entropy_with_logits(z.amax(dim=(-2, -1)), target, reduction="none")
        else:
            g = torch.softmax(z, dim=1).amax(dim=(-2, -1))
            per_class = F.binary_cross_entropy(g, target, reduction="none")
        per_image = (per_class * known).sum(dim=1) / presence.shape[1]
        return _reduce(per_image, known.any(dim=1), red)


def _check_heads(deep_logits: Sequence[Tensor], candidates: Tensor) -> None:
    _check_maps(candidates, "candidates")
    if not deep_logits:
        raise ValueError("deep_logits is empty: the network has no deep-supervision heads")
    for logits in deep_logits:
        if logits.dim() != 4 or logits.shape[:2] != candidates.shape[:2]:
            raise ValueError(f"every head must be (B, C, h, w) with (B, C) = {tuple(candidates.shape[:2])}; "
                             f"got {tuple(logits.shape)}")
        if logits.shape[-2] > candidates.shape[-2] or logits.shape[-1] > candidates.shape[-1]:
            raise ValueError(f"head grid {tuple(logits.shape[-2:])} is finer than the input "
                             f"{tuple(candidates.shape[-2:])}")
