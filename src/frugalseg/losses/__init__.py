"""Losses: pure functions on tensors (plus thin ``nn.Module`` wrappers), each tested alone.

Import from the submodules (``frugalseg.losses.dice``, ``.consistency``, ...) or from here for the
names re-exported below.
"""

from __future__ import annotations

from frugalseg.losses.contrastive_variance import (
    ContrastiveVarianceLoss,
    CVInput,
    CVNegatives,
    CVReduction,
    class_mean_intensity,
    contrastive_variance_loss,
    cosine_similarity_matrix,
    variance_maps,
)
from frugalseg.losses.partial_ce import PartialCrossEntropyLoss, labelled_targets, partial_cross_entropy

__all__ = [
    "CVInput",
    "CVNegatives",
    "CVReduction",
    "ContrastiveVarianceLoss",
    "PartialCrossEntropyLoss",
    "class_mean_intensity",
    "contrastive_variance_loss",
    "cosine_similarity_matrix",
    "labelled_targets",
    "partial_cross_entropy",
    "variance_maps",
]
