"""Soft Dice + cross-entropy on (partially) labelled pixels: the supervised loss of SSL4MIS/ACTION.

SSL4MIS's Dice (``utils/losses.py`` ``DiceLoss``) is, per class c over the whole batch,
``1 - (2 Σ p_c y_c + ε) / (Σ p_c² + Σ y_c² + ε)`` with ε = 1e-5, averaged over the
classes including background. MONAI's :class:`~monai.losses.DiceLoss` with
``squared_pred=True, batch=True, include_background=True`` computes exactly this, so we
use it; pixels with label ``ignore_index`` (rotation borders, unlabelled pixels) are
removed by zeroing both the prediction and the one-hot target there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import Tensor

_DICE = DiceLoss(
    include_background=True, to_onehot_y=False, softmax=False, squared_pred=True, batch=True,
    smooth_nr=1e-5, smooth_dr=1e-5,
)


def masked_dice_loss(logits: Tensor, label: Tensor, ignore_index: int = -1) -> Tensor:
    """SSL4MIS soft Dice loss of ``softmax(logits)`` against ``label``, ignoring ``ignore_index`` pixels.

    Args:
        logits: (B, C, H, W) raw scores.
        label: (B, H, W) int64 class indices, ``ignore_index`` where unknown.
        ignore_index: label value of pixels that do not count.

    Returns:
        scalar loss in [0, 1] (fp32).
    """
    logits = logits.float()
    valid = (label != ignore_index).unsqueeze(1)
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(label.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype) * valid
    return _DICE(probs, onehot)


def dice_ce_loss(logits: Tensor, label: Tensor, ignore_index: int = -1) -> tuple[Tensor, Tensor]:
    """Cross-entropy and soft Dice on the labelled pixels; the supervised loss is ``0.5 · (CE + Dice)``.

    Returns:
        ``(ce, dice)`` so that callers can log both. CE is 0 (with a gradient path) when no
        pixel is labelled, rather than NaN.
    """
    logits = logits.float()
    valid = label != ignore_index
    if valid.any():
        ce = F.cross_entropy(logits, label, ignore_index=ignore_index)
    else:
        ce = logits.sum() * 0.0
    return ce, masked_dice_loss(logits, label, ignore_index)
