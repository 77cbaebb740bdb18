"""Losses: pure functions on tensors (plus thin ``nn.Module`` wrappers), each tested alone.

Import from the submodules (``frugalseg.losses.dice``, ``.consistency``, ...) or from here for the
names re-exported below.
"""

from __future__ import annotations

from frugalseg.losses.anatomical_contrast import (
    AnCoSample,
    anatomical_contrast_from_sample,
    anatomical_contrast_loss,
    class_prototypes,
    class_relation_graph,
    sample_anatomical_contrast,
)
from frugalseg.losses.co_regularisation import cross_pseudo_supervision, cutmix_masks, mix
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
from frugalseg.losses.distillation import anchor_logits, soft_distillation_kl
from frugalseg.losses.instance_weighting import (
    IndicatorOptimizer,
    indicator_step,
    influence,
    segment_classifier_gradients,
    weighted_cross_entropy,
)
from frugalseg.losses.multilabel_deep_supervision import (
    MLDSActivation,
    MLDSReduction,
    box_positive_map,
    global_tag_loss,
    multilabel_deep_supervision_loss,
    ordinary_deep_supervision_loss,
)
from frugalseg.losses.partial_ce import PartialCrossEntropyLoss, labelled_targets, partial_cross_entropy
from frugalseg.losses.pseudo_label import confidence_weighted_cross_entropy, confident_fraction

__all__ = [
    "AnCoSample",
    "anatomical_contrast_from_sample",
    "anatomical_contrast_loss",
    "anchor_logits",
    "class_prototypes",
    "class_relation_graph",
    "confidence_weighted_cross_entropy",
    "confident_fraction",
    "sample_anatomical_contrast",
    "soft_distillation_kl",
    "CVInput",
    "CVNegatives",
    "CVReduction",
    "ContrastiveVarianceLoss",
    "IndicatorOptimizer",
    "MLDSActivation",
    "MLDSReduction",
    "PartialCrossEntropyLoss",
    "box_positive_map",
    "class_mean_intensity",
    "contrastive_variance_loss",
    "cosine_similarity_matrix",
    "cross_pseudo_supervision",
    "cutmix_masks",
    "global_tag_loss",
    "indicator_step",
    "influence",
    "labelled_targets",
    "mix",
    "multilabel_deep_supervision_loss",
    "ordinary_deep_supervision_loss",
    "partial_cross_entropy",
    "segment_classifier_gradients",
    "variance_maps",
    "weighted_cross_entropy",
]
