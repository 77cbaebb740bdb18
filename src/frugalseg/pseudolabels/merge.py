"""One label map from several boxes' mask logits: the rule for pixels that two boxes both claim.

Each box k of class c_k gives a logit map L_k on the slice (LiteMedSAM's mask logit: the box's mask is
``L_k > 0``). The label map is decided per pixel:

* a box claims only pixels inside itself (the annotation format says a class lies inside its boxes, so a
  mask leaking out of its box is cut at the box's edge): L_k is -inf outside box k;
* the pixel takes the class of the box with the highest logit there (ties: the first box in the item's
  order), provided that logit is > 0 (sigmoid > 0.5: the box's own mask contains the pixel);
* a pixel no box's mask contains is background (class 0).

So two overlapping masks of different classes split their overlap by which box the model is surer of,
pixel by pixel, instead of by the order the boxes were drawn in (upstream LiteMedSAM's demo script simply
lets the later box overwrite the earlier one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalseg.pseudolabels.litemedsam import BoxPrompt

__all__ = ["resolve_boxes"]


def resolve_boxes(logits: np.ndarray, boxes: Sequence[BoxPrompt], classes: Sequence[int]) -> np.ndarray:
    """The (H, W) int64 label map of K boxes from their (K, H, W) logits (rule in the module docstring)."""
    if logits.ndim != 3 or len(logits) != len(boxes) or len(boxes) != len(classes):
        raise ValueError(f"need (K, H, W) logits for K boxes and K classes; got {logits.shape}, "
                         f"{len(boxes)} boxes, {len(classes)} classes")
    h, w = logits.shape[1:]
    label = np.zeros((h, w), dtype=np.int64)
    if not len(boxes):
        return label
    scores = np.full(logits.shape, -np.inf, dtype=np.float64)
    for k, b in enumerate(boxes):
        scores[k, b.y0 : b.y1 + 1, b.x0 : b.x1 + 1] = logits[k, b.y0 : b.y1 + 1, b.x0 : b.x1 + 1]
    best = np.argmax(scores, axis=0)  # first maximum on ties
    best_score = np.take_along_axis(scores, best[None], axis=0)[0]
    cls = np.asarray(classes, dtype=np.int64)[best]
    return np.where(best_score > 0, cls, 0)
