r"""Co-regularisation of two networks: cross pseudo supervision on CutMix-mixed images, weighted.

The dynamic co-regularisation (DCR) of Pan et al. (AAAI 2022) as the authors' code does it
(``DesertsP/Hybrid-Supervised-Segmentation``, ``models/dii_aided_dcr.py``): two networks f₁, f₂; two
images x_i, x_j and a CutMix box mask M (1 inside the box)::

    x_mix = (1 − M) · x_i + M · x_j
    ŷ_n   = (1 − M) · argmax f_n(x_i) + M · argmax f_n(x_j)                (no gradient)
    L_cr  = mean_p  w_p · [ CE(f₁(x_mix)_p, ŷ₂_p) + CE(f₂(x_mix)_p, ŷ₁_p) ]

with w the trust in the mixed pair: ``(γ_i + γ_j) / 2`` per pair (``dii_aided_dcr.py``) or the two
images' per-pixel weight maps mixed by the same M (``indicator_learner_hybrid.py``). Each network
learns from the other's prediction on a view neither has seen, so a distortion one network picked up
from a bad weak label is not reinforced by itself (the "erroneous accumulation" the paper's abstract
names), and the down-weighting follows the labels' trust.

The mask follows the code's CutMix (``generate_cutout_mask``): one box of a fixed share of the image's
area, its width drawn uniformly, its height from the area, its position uniform inside the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_pseudo_supervision", "cutmix_masks", "mix"]


def cutmix_masks(
    batch: int,
    height: int,
    width: int,
    area: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """One CutMix box mask per image: True inside a box covering ``area`` of the image.

    The width is uniform in ``[⌊area·W⌋ + 1, W − 1]`` (W when that range is empty), the height is
    ``min(H, round(area·H·W / width))``, the top-left corner is uniform over the positions that keep the
    box inside. With ``area = 0.5`` this is the authors' ``generate_cutout_mask(ratio=2)``.

    Args:
        batch, height, width: the output shape (B, H, W).
        area: the box's share of the image, in (0, 1).
        generator: torch generator on the CPU (default: the global one, which the engine seeds and
            checkpoints, so a resumed run draws the same boxes).
        device: where the mask goes.

    Returns:
        (B, H, W) bool.

    Raises:
        ValueError: ``area`` outside (0, 1) or a non-positive size.
    """
    if not 0.0 < area < 1.0:
        raise ValueError(f"area must lie in (0, 1); got {area}")
    if batch < 0 or height < 1 or width < 1:
        raise ValueError(f"bad mask shape {(batch, height, width)}")
    masks = torch.zeros(batch, height, width, dtype=torch.bool)
    low = int(area * width) + 1
    for i in range(batch):
        w = int(torch.randint(low, width, (1,), generator=generator)) if low < width else width
        h = min(height, max(1, round(area * height * width / w)))
        y0 = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        x0 = int(torch.randint(0, width - w + 1, (1,), generator=generator))
        masks[i, y0 : y0 + h, x0 : x0 + w] = True
    return masks.to(device) if device is not None else masks


def mix(x: Tensor, mask: Tensor, partner: Tensor) -> Tensor:
    """``x`` with each image's masked pixels taken from its partner: ``(1 − M)·x_b + M·x_partner[b]``.

    Works for images and logits (B, C, H, W), label and weight maps (B, H, W), and per-image values
    broadcast to maps; a binary mask makes mixing argmax labels and taking the argmax of mixed logits
    the same.

    Args:
        x: (B, ..., H, W).
        mask: (B, H, W) bool, True where the partner's pixel is taken.
        partner: (B,) int64, the image each one is mixed with.
    """
    if mask.shape[0] != x.shape[0] or mask.shape[1:] != x.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit x {tuple(x.shape)}")
    m = mask.reshape(mask.shape[0], *([1] * (x.dim() - 3)), *mask.shape[1:])
    return torch.where(m, x[partner], x)


def cross_pseudo_supervision(
    logits_a: Tensor, logits_b: Tensor, pseudo_a: Tensor, pseudo_b: Tensor, weight: Tensor | None = None
) -> Tensor:
    """``mean_p w_p · [CE(logits_a, pseudo_b) + CE(logits_b, pseudo_a)]``: each network learns the other's labels.

    Args:
        logits_a, logits_b: (B, C, H, W) the two networks on the same (mixed) images.
        pseudo_a, pseudo_b: (B, H, W) int64 their pseudo-labels (detached argmaxes).
        weight: None (1), (B,) per image, or (B, H, W) per pixel; detached.

    Returns:
        scalar fp32: the mean over all B·H·W pixels (so a weight below 1 lowers the term).
    """
    ce = F.cross_entropy(logits_a.float(), pseudo_b.detach(), reduction="none")
    ce = ce + F.cross_entropy(logits_b.float(), pseudo_a.detach(), reduction="none")
    if weight is not None:
        w = weight.detach().float()
        ce = ce * (w.reshape(-1, 1, 1) if w.dim() == 1 else w)
    return ce.mean()
