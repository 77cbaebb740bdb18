"""Partial cross-entropy: cross-entropy on the pixels whose label is certain, nothing on the rest.

This is the supervised term of every point- and scribble-supervised method in the WSL4MIS
family (``CrossEntropyLoss(ignore_index=4)`` in WSL4MIS, where 4 marks an unlabelled pixel)
and the first term of PSCV (En & Guo, BMVC 2024). In frugalseg the annotation reaches the loss
as a candidate-label map (``docs/annotation-format.md``, ``DESIGN.md``): a pixel is *labelled*
exactly when its candidate set is a singleton (a click, a scribble pixel, a mask pixel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PartialCrossEntropyLoss", "labelled_targets", "partial_cross_entropy"]


def _check_candidates(logits: Tensor, candidates: Tensor) -> None:
    if logits.dim() < 3:
        raise ValueError(f"logits must be (B, C, *spatial); got shape {tuple(logits.shape)}")
    if candidates.shape != logits.shape:
        raise ValueError(
            f"candidates must have the shape of logits {tuple(logits.shape)}; got {tuple(candidates.shape)}"
        )
    if candidates.dtype != torch.bool:
        raise ValueError(f"candidates must be a bool tensor; got {candidates.dtype}")


def labelled_targets(candidates: Tensor) -> tuple[Tensor, Tensor]:
    """Class index and "is labelled" flag of every pixel, read from a candidate-label map.

    Args:
        candidates: (B, C, *spatial) bool; ``candidates[b, c, p]`` says pixel ``p`` may be class ``c``.

    Returns:
        ``(target, labelled)``, both (B, *spatial): ``target`` (int64) is the single candidate where
        ``labelled`` (bool) is true and 0 elsewhere (a placeholder that is never read). A pixel with
        several candidates carries no pixel-level label; a pixel with none (e.g. outside the image
        after a rotation) carries none either.
    """
    labelled = candidates.sum(dim=1) == 1
    target = candidates.to(torch.uint8).argmax(dim=1) * labelled
    return target.long(), labelled


def partial_cross_entropy(logits: Tensor, candidates: Tensor) -> Tensor:
    """Cross-entropy averaged over the labelled pixels of the batch.

    Formula, with Ω the set of (image, pixel) pairs whose candidate set is a singleton {y}::

        L_pCE = − (1 / |Ω|) · Σ_{(b, j) ∈ Ω} log softmax(logits_b)[y_bj, j]

    i.e. the mean is over labelled pixels pooled over the whole batch (as ``CrossEntropyLoss``
    with ``ignore_index`` does), not a mean of per-image means: an image with many labelled pixels
    (a full mask) weighs more than one with three clicks, as in WSL4MIS.

    Computed in fp32 with autocast disabled, so that bf16/fp16 logits do not lose the small
    log-probabilities of confident pixels.

    Args:
        logits: (B, C, *spatial) raw scores (no softmax).
        candidates: (B, C, *spatial) bool candidate-label map.

    Returns:
        A scalar. When no pixel of the batch is labelled it is exactly 0 and still attached to
        ``logits`` (zero gradient, never NaN), so a batch of unlabelled images cannot poison the step.

    Raises:
        ValueError: if the shapes differ or ``candidates`` is not bool.
    """
    _check_candidates(logits, candidates)
    target, labelled = labelled_targets(candidates)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        per_pixel = F.cross_entropy(logits.float(), target, reduction="none")
        weight = labelled.to(per_pixel.dtype)
        return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


class PartialCrossEntropyLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`partial_cross_entropy` (no options: it has no hyper-parameter)."""

    def forward(self, logits: Tensor, candidates: Tensor) -> Tensor:
        """See :func:`partial_cross_entropy`."""
        return partial_cross_entropy(logits, candidates)
