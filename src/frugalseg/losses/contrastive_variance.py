r"""Contrastive variance (CV) loss of PSCV (En & Guo, BMVC 2024; arXiv 2212.08774).

PSCV trains a segmentation network from one click per class and slice with
``L = L_pCE + λ · L_CV``. The partial cross-entropy is in :mod:`frugalseg.losses.partial_ce`;
this module holds the CV term, which is what lets the *unlabelled* pixels shape the prediction.

What is the paper's and what is ours
------------------------------------
The full text of the paper (arXiv, BMVC and ICLR-2024 versions) was not available to us; see
``docs/methods/pscv.md``. What the public record does say:

* [P, abstract] the CV loss "exploit[s] the statistical spatial distribution properties of organs
  in medical images and their variance distribution map representations to enforce
  discriminative predictions over the unlabeled pixels";
* [R, ICLR-2024 reviews, OpenReview ``6NO5UVWvo6``] the per-class *pixel-level variance distribution
  map* (their Eq. 4) multiplies the prediction for the k-th class; it modifies the Mumford–Shah loss
  "by replacing the mean of pixel-wise intensity differences with a variance map"; the contrast is
  *inter-image* and *pixel-level*, pulls together the same organ class across images and pushes
  apart different classes, and uses **cosine similarity**.

Everything below that goes beyond those sentences is our reconstruction (docs/methods/pscv.md),
built on the Mumford–Shah loss as WSL4MIS codes it.

Formula (our notation)
----------------------
``x_i`` is image i (B images, H·W pixels ``j``, intensities as fed to the network), ``p_i[k, j]`` the
softmax probability of class k (K classes, background included)::

    c_ik     = Σ_j p_i[k,j] · x_ij  /  (Σ_j p_i[k,j] + ε)              soft mean intensity of class k in image i
    z_ik(j)  = p_i[k,j] · (x_ij − c_ik)²                                 variance distribution map, an H·W map
    s(a, b)  = <a, b> / (max(‖a‖, ε) · max(‖b‖, ε))                     cosine similarity of flattened maps

For an anchor map ``a = (i, k)``, the positives are ``P(a) = {(j, k) : j ≠ i}`` (same class, other
images) and the negatives ``N(a) = {(j', k') : k' ≠ k}`` (other classes: in every image of the batch
with ``negatives="all"``, only in the other images with ``negatives="other_images"``)::

    ℓ(a) = − 1/|P(a)| Σ_{p ∈ P(a)} log [ exp(s(z_a, z_p)/τ) / ( exp(s(z_a, z_p)/τ) + Σ_{n ∈ N(a)} exp(s(z_a, z_n)/τ) ) ]

    L_CV = mean of ℓ(a) over the anchors that have at least one positive

With several image channels the squared deviation is summed over channels (one channel, as in
the paper, is the formula above). Gradients flow through ``p`` everywhere, ``c_ik`` included: it is a
differentiable function of ``p`` and nothing is detached.

Reconstruction choices [U], each an option so that the paper's version can be matched once read:

* ``negatives="all"`` (default): other-class maps of the *same* image are negatives too; they are
  the hardest and cheapest negatives. ``"other_images"`` is the cross-image-only sum of pscv.md §1.4(c).
* ``include_background=True`` (default): background maps are anchors, positives and negatives;
  ``False`` drops channel 0 from the loss (as MONAI's ``include_background``).
* A map whose norm is at most ``ε`` (a class with probability exactly 0 everywhere, or a constant
  image) has no direction: it is neither anchor, positive nor negative. With softmax outputs this
  never happens in practice; it keeps the loss finite (no NaN) when probabilities are given directly.
* Mean over valid anchors (pscv.md writes ``1/(B·K)``; the two agree when every anchor is valid).

Numerics
--------
The loss is computed in fp32 with autocast disabled (a bf16 matmul of 65,536-long maps loses the
small cosine differences the contrast lives on); log-sums are taken with a masked log-sum-exp.
Cosines of non-negative maps lie in [0, 1], so the logits ``s/τ`` lie in [0, 1/τ]: with τ = 1 the
whole contrast spans one nat, hence the default τ = 0.1 (see ``docs/methods/pscv.md``).

Distributed training
--------------------
This function contrasts the maps of the batch it is given and nothing else. frugalseg's engine
splits ``train.batch_size`` over the ranks, so under DDP each rank holds B / world_size images;
contrasting only those would change the loss (fewer positives and negatives per anchor: 2 instead
of 11 with a batch of 12 on 4 GPUs) with the number of GPUs. The ``pscv`` method therefore gathers
the logits and images of every rank before calling this function (``gather_across_ranks``, on by
default, with ``torch.distributed.nn.functional.all_gather`` so gradients flow back to each rank),
which makes the loss and the update those of one process on the global batch. With B = 1 image in
the contrast set no anchor has a positive and the loss is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from frugalseg.choices import StrEnum

__all__ = [
    "CVInput",
    "CVNegatives",
    "CVReduction",
    "ContrastiveVarianceLoss",
    "class_mean_intensity",
    "contrastive_variance_loss",
    "cosine_similarity_matrix",
    "variance_maps",
]


class CVInput(StrEnum):
    """What the prediction tensor holds."""

    LOGITS = "logits"  # raw scores; a softmax over dim 1 is applied
    PROBS = "probs"  # probabilities that already sum to 1 over dim 1


class CVNegatives(StrEnum):
    """Which other-class maps are negatives of an anchor (a reconstruction choice, see the module doc)."""

    ALL = "all"  # other classes in every image of the batch, the anchor's own image included
    OTHER_IMAGES = "other_images"  # other classes in the other images only


class CVReduction(StrEnum):
    """How per-anchor losses are reduced."""

    MEAN = "mean"  # mean over valid anchors (0 when there is none)
    SUM = "sum"  # sum over valid anchors
    NONE = "none"  # (B, K') per-anchor losses, 0 for invalid anchors


def _check_inputs(pred: Tensor, image: Tensor) -> None:
    if pred.dim() < 3:
        raise ValueError(f"pred must be (B, C, *spatial); got shape {tuple(pred.shape)}")
    if image.dim() != pred.dim() or image.shape[0] != pred.shape[0] or image.shape[2:] != pred.shape[2:]:
        raise ValueError(
            f"image must be (B, channels, *spatial) matching pred {tuple(pred.shape)} in B and spatial size; "
            f"got {tuple(image.shape)}"
        )


def class_mean_intensity(probs: Tensor, image: Tensor, eps: float = 1e-8) -> Tensor:
    """Soft mean intensity of every class in every image: ``c_ik = Σ_j p_ik(j) x_i(j) / (Σ_j p_ik(j) + ε)``.

    This is the piecewise-constant fit of the Mumford–Shah functional (Kim & Ye, TIP 2020), the
    quantity WSL4MIS's ``levelsetLoss`` calls ``pcentroid``. ``ε`` keeps it finite (0) for a class
    predicted nowhere.

    Args:
        probs: (B, K, *spatial) class probabilities.
        image: (B, Ci, *spatial) intensities.
        eps: added to the probability mass.

    Returns:
        (B, K, Ci).
    """
    p = probs.flatten(2)  # (B, K, N)
    x = image.flatten(2)  # (B, Ci, N)
    mass = p.sum(dim=2, keepdim=True)  # (B, K, 1)
    return torch.einsum("bkn,bcn->bkc", p, x) / (mass + eps)


def variance_maps(probs: Tensor, image: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-class pixel-level variance distribution maps ``z_ik(j) = p_ik(j) · Σ_ch (x_i,ch(j) − c_ik,ch)²``.

    The Mumford–Shah data term, kept as a map instead of summed: summing ``z`` over pixels and
    classes gives the (intensity part of the) Mumford–Shah loss. Reconstructed from the reviews'
    description of PSCV's Eq. 4 ([U], see the module docstring).

    Args:
        probs: (B, K, *spatial) class probabilities (softmax output).
        image: (B, Ci, *spatial) intensities as fed to the network (Ci = 1 in the paper).
        eps: see :func:`class_mean_intensity`.

    Returns:
        (B, K, *spatial), non-negative, in the dtype of ``probs``.
    """
    _check_inputs(probs, image)
    centroid = class_mean_intensity(probs, image, eps)  # (B, K, Ci)
    x = image.flatten(2).unsqueeze(1)  # (B, 1, Ci, N)
    sq_dev = (x - centroid.unsqueeze(-1)).pow(2).sum(dim=2)  # (B, K, N)
    return (probs.flatten(2) * sq_dev).view_as(probs)


def cosine_similarity_matrix(maps: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity between every pair of flattened maps: ``<a, b> / (max(‖a‖, ε) max(‖b‖, ε))``.

    Args:
        maps: (M, *dims) any M maps.
        eps: lower bound on each norm, so that a zero map has similarity 0 with everything.

    Returns:
        (M, M).
    """
    flat = maps.flatten(1)
    norms = flat.norm(dim=1).clamp_min(eps)
    unit = flat / norms.unsqueeze(1)
    return unit @ unit.T


def _masked_logsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """``log Σ_{mask} exp(x)`` along the last dim; ``-inf`` (with a zero, finite gradient) for an empty row."""
    has_any = mask.any(dim=-1)
    xm = x.masked_fill(~mask, float("-inf"))
    row_max = xm.amax(dim=-1)
    row_max = torch.where(has_any, row_max, torch.zeros_like(row_max)).detach()
    total = torch.exp(xm - row_max.unsqueeze(-1)).sum(dim=-1)
    safe = torch.where(has_any, total, torch.ones_like(total))
    return torch.where(has_any, row_max + torch.log(safe), torch.full_like(total, float("-inf")))


def contrastive_variance_loss(
    pred: Tensor,
    image: Tensor,
    temperature: float = 0.1,
    *,
    input_type: str | CVInput = CVInput.LOGITS,
    negatives: str | CVNegatives = CVNegatives.ALL,
    include_background: bool = True,
    reduction: str | CVReduction = CVReduction.MEAN,
    eps: float = 1e-8,
) -> Tensor:
    """Contrastive variance loss between the class variance maps of the images of one batch.

    See the module docstring for the formula, what is the paper's and what is reconstructed, and
    the DDP behaviour (this function contrasts the batch it is given; ``pscv`` gathers the ranks first).

    Args:
        pred: (B, K, *spatial) logits (``input_type="logits"``) or probabilities (``"probs"``).
        image: (B, Ci, *spatial) the images the prediction was made from (after augmentation).
        temperature: τ > 0 of the InfoNCE.
        input_type: ``"logits"`` or ``"probs"``.
        negatives: ``"all"`` or ``"other_images"``.
        include_background: whether class 0 takes part.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (then (B, K') per-anchor losses, K' = K or K − 1,
            0 for anchors with no valid positive).
        eps: numerical floor (> 0) for class masses and map norms.

    Returns:
        fp32 scalar (or (B, K') for ``reduction="none"``), ≥ 0. It is 0, still attached to ``pred``,
        when no anchor has a positive (B = 1, or every class empty).

    Raises:
        ValueError: on an unknown option, τ ≤ 0, ε ≤ 0, or shapes that do not match.
    """
    input_type, negatives, reduction = _checked_options(input_type, negatives, reduction, temperature, eps)
    _check_inputs(pred, image)

    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred32, image32 = pred.float(), image.float()
        probs = torch.softmax(pred32, dim=1) if input_type is CVInput.LOGITS else pred32
        if not include_background:
            probs = probs[:, 1:]
        b, k = probs.shape[:2]
        maps = variance_maps(probs, image32, eps).flatten(2)  # (B, K', N)

        flat = maps.reshape(b * k, -1)  # anchor index a = i * K' + k
        valid = flat.norm(dim=1) > eps
        logits = cosine_similarity_matrix(flat, eps) / temperature  # (M, M)
        pos, neg = _pairs(b, k, valid, negatives)
        per_anchor, anchor_ok = _anchor_losses(logits, pos, neg)

        if reduction is CVReduction.NONE:
            return per_anchor.view(b, k)
        total = per_anchor.sum()
        if reduction is CVReduction.SUM:
            return total
        return total / anchor_ok.sum().clamp_min(1)


def _checked_options(input_type: str | CVInput, negatives: str | CVNegatives, reduction: str | CVReduction,
                     temperature: float, eps: float) -> tuple[CVInput, CVNegatives, CVReduction]:
    """The options as enums, or a ``ValueError`` naming the one that is off (before any tensor is touched)."""
    parsed = (CVInput.parse(input_type, "input_type"), CVNegatives.parse(negatives, "negatives"),
              CVReduction.parse(reduction, "reduction"))
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (with 0 a class predicted nowhere gives 0/0 = NaN); got {eps!r}")
    return parsed


def _pairs(b: int, k: int, valid: Tensor, negatives: CVNegatives) -> tuple[Tensor, Tensor]:
    """The positive and negative pairs of the ``b * k`` anchors (anchor ``a = i * k + class``), as (M, M) masks.

    Positives: the same class in another image. Negatives: another class (in another image only, with
    ``negatives="other_images"``). A map that is all zero (``valid`` false) takes part in no pair.
    """
    img = torch.arange(b, device=valid.device).repeat_interleave(k)
    cls = torch.arange(k, device=valid.device).repeat(b)
    same_img = img[:, None] == img[None, :]
    same_cls = cls[:, None] == cls[None, :]
    both_valid = valid[:, None] & valid[None, :]
    pos = same_cls & ~same_img & both_valid
    neg = ~same_cls & both_valid
    if negatives is CVNegatives.OTHER_IMAGES:
        neg = neg & ~same_img
    return pos, neg


def _anchor_losses(logits: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """Each anchor's InfoNCE averaged over its positives (0 for an anchor with none), and which anchors have one.

    Written with a log-sum-exp over the negatives so that every term stays finite, however large the logits.
    """
    neg_lse = _masked_logsumexp(logits, neg)  # (M,)
    # −log(e^{s_ap} / (e^{s_ap} + Σ_n e^{s_an})) = logaddexp(s_ap, lse_n) − s_ap, finite for every pair.
    pair = torch.logaddexp(logits, neg_lse.unsqueeze(1)) - logits
    n_pos = pos.sum(dim=1)
    per_anchor = (pair * pos).sum(dim=1) / n_pos.clamp_min(1)
    anchor_ok = n_pos > 0
    return per_anchor * anchor_ok, anchor_ok


class ContrastiveVarianceLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`contrastive_variance_loss`; options are checked here, once.

    Example:
        >>> loss_fn = ContrastiveVarianceLoss(temperature=0.1)
        >>> logits, image = torch.randn(4, 4, 32, 32), torch.rand(4, 1, 32, 32)
        >>> loss_fn(logits, image).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        input_type: str | CVInput = CVInput.LOGITS,
        negatives: str | CVNegatives = CVNegatives.ALL,
        include_background: bool = True,
        reduction: str | CVReduction = CVReduction.MEAN,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.input_type, self.negatives, self.reduction = _checked_options(input_type, negatives, reduction,
                                                                           temperature, eps)
        self.temperature = float(temperature)
        self.include_background = bool(include_background)
        self.eps = float(eps)

    def forward(self, pred: Tensor, image: Tensor) -> Tensor:
        """See :func:`contrastive_variance_loss`: ``pred`` (B, K, H, W), ``image`` (B, Ci, H, W)."""
        return contrastive_variance_loss(
            pred,
            image,
            self.temperature,
            input_type=self.input_type,
            negatives=self.negatives,
            include_background=self.include_background,
            reduction=self.reduction,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, input_type={self.input_type}, negatives={self.negatives}, "
            f"include_background={self.include_background}, reduction={self.reduction}"
        )
