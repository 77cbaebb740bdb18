"""Active learning: which unannotated slices to annotate next (``frugalseg suggest``, the bench's simulated loop)."""

from frugalseg.active.ranking import select_slices
from frugalseg.active.scores import STRATEGIES, disagreement, predictive_entropy

__all__ = ["STRATEGIES", "disagreement", "predictive_entropy", "select_slices"]
