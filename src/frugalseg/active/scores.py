"""What a slice is worth annotating: one number per slice from the model's softmax maps.

Two uncertainty scores, each an average over the slice's pixels so that a slice's size does not
decide its rank (docs/active-learning.md):

- predictive entropy: mean over pixels of H(p) = −Σ_c p_c log p_c, in nats (0 for a certain
  prediction, log C for a uniform one);
- disagreement: mean over pixels of the total-variation distance ½ Σ_c |p_c − q_c| between two
  predictions of the same slice (0 when they agree, 1 when they put their mass on different classes).

``random`` draws one uniform number per slice from a generator seeded by the seed and the slice's id
(as the simulator does), so a slice's draw does not depend on which other slices are in the pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from frugalseg.data.simulate import item_rng

__all__ = ["STRATEGIES", "disagreement", "predictive_entropy", "random_scores"]

STRATEGIES = ("entropy", "disagreement", "random")
"""What ``frugalseg suggest --strategy`` accepts."""


def predictive_entropy(probs: Tensor) -> Tensor:
    """Mean per-pixel entropy (nats) of softmax maps (B, C, H, W) → (B,)."""
    return -torch.special.xlogy(probs, probs).sum(dim=1).mean(dim=(1, 2))


def disagreement(p: Tensor, q: Tensor) -> Tensor:
    """Mean per-pixel total-variation distance between two softmax maps (B, C, H, W) → (B,), in [0, 1]."""
    return 0.5 * (p - q).abs().sum(dim=1).mean(dim=(1, 2))


def random_scores(item_ids: Sequence[str], seed: int) -> np.ndarray:
    """One seeded uniform draw per slice (the reference every strategy must beat)."""
    return np.array([item_rng(seed, f"suggest:{i}").random() for i in item_ids], dtype=np.float64)
