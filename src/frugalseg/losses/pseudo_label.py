r"""Confidence-weighted pseudo-label cross-entropy (ACTION stage iii; ReCo, Liu et al., ICLR 2022).

A teacher labels the unlabelled images; the student learns those labels on a strongly augmented view.
Each image's term is scaled by how much of the image the teacher was sure about, so an image the
teacher mostly guesses on weighs little::

    w_b = |{j valid : c_b(j) ≥ θ}| / |{j valid}|               share of confident pixels in image b
    L   = 1/|V| Σ_{(b, j) ∈ V}  w_b · CE(o_b(j), ŷ_b(j))         V: pixels with a pseudo-label (ŷ ≠ ignore)

with c the teacher's confidence (max softmax) and ŷ its argmax, both moved with the image by the
augmentation (CutMix), and θ the strong threshold (ACTION: 0.97). Every pixel with a pseudo-label
counts, not only the confident ones: the weight is per image.

The official ``compute_unsupervised_loss`` averages over the pixels whose cross-entropy is *positive*
(``masked_select(w·CE, CE > 0)``), which drops the ignored pixels (their CE is 0) and also any pixel
whose CE underflows to exactly 0; we average over the pixels that carry a pseudo-label, which is what
the selection is meant to do, and which does not change with floating-point saturation.
"""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor

__all__ = ["confident_fraction", "confidence_weighted_cross_entropy"]


def confident_fraction(confidence: Tensor, valid: Tensor, threshold: float) -> Tensor:
    """(B,) share of each image's valid pixels whose confidence reaches ``threshold`` (0 for an image with none).

    Args:
        confidence: (B, H, W) teacher confidence in [0, 1].
        valid: (B, H, W) bool, pixels that carry a pseudo-label.
        threshold: θ.
    """
    confident = ((confidence >= threshold) & valid).flatten(1).sum(1).float()
    return confident / valid.flatten(1).sum(1).clamp(min=1).float()


def confidence_weighted_cross_entropy(
    logits: Tensor, pseudo_labels: Tensor, confidence: Tensor, threshold: float, ignore_index: int = -1
) -> Tensor:
    """The mean over pseudo-labelled pixels of ``w_b · CE`` (module docstring).

    Args:
        logits: (B, C, H, W) student logits on the augmented images.
        pseudo_labels: (B, H, W) int64 teacher argmax, ``ignore_index`` where there is none.
        confidence: (B, H, W) teacher max-softmax; detached.
        threshold: θ, the confidence that counts as sure (ACTION's strong threshold, 0.97).
        ignore_index: label of pixels without a pseudo-label.

    Returns:
        scalar fp32; 0 (with a gradient path) when no pixel has a pseudo-label.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold}")
    valid = pseudo_labels != ignore_index
    if not valid.any():
        return logits.float().sum() * 0.0
    weight = confident_fraction(confidence.detach(), valid, threshold)
    ce = F.cross_entropy(logits.float(), pseudo_labels, ignore_index=ignore_index, reduction="none")
    weighted = ce * weight.reshape(-1, 1, 1)
    return weighted[valid].mean()
