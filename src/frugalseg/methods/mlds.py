r"""``mlds``: multi-label deep supervision with a mean teacher (Reiß et al., CVPR 2021, "Every Annotation Counts").

One U-Net with deep-supervision heads (a head on the bottleneck and on every decoder stage,
``model.deep_supervision: true``) learns from any mix of annotations in one run: full masks,
boxes, image-level tags, clicks or scribbles, and unlabelled images. An EMA copy of it, the
teacher, labels every image that has no full mask; its prediction is first **filtered** by the
image's own weak labels, so that it never contradicts them. With ``K`` the candidate-label map of
the batch (``DESIGN.md``), ``o`` the student's full-resolution logits and ``o^l`` its head logits::

    L(t) = λ_ce · CE(o; K) + λ_ds · DS({o^l}; K) + λ_tag · TAG(o^1; presence)
           + w(t) · [ λ_ce · CE(o; K̂) + λ_ds · DS({o^l}; K̂) ]            (images without a mask)

    CE(o; K)  partial cross-entropy on the pixels whose candidate set is a singleton (masks, clicks)
    DS        multi-label deep supervision (``deep_supervision: multilabel``): per head, BCE against the
              max-pooled singletons, negatives where the pooled candidate map excludes a class (outside
              a box, an absent tag), and the pooled boxes as positives on the ``box_positive_heads``
              coarsest heads; or, for the paper's ablation (``deep_supervision: ordinary``),
              nearest-neighbour labels with softmax CE (:mod:`frugalseg.losses.multilabel_deep_supervision`)
    TAG       BCE of the global max-pooling of the coarsest head against the known image-level presence
    K̂         the teacher's pseudo-label: argmax of softmax(teacher logits) over each pixel's candidate
              classes only (absent tags removed, class c removed outside its boxes, clicks imposed),
              one-hot where its probability reaches ``confidence_threshold``, ``K`` elsewhere
    w(t)      pseudo_weight · exp(−5 (1 − t/R)²) for t < R = rampup_fraction · T, then pseudo_weight

The full-scale CE and the BCE of every head on full masks are the official loss
(``Simael/mlds-unet``); how boxes, tags and unlabelled images enter, the teacher and the schedule
are reconstructed (the paper's method section was not available to us): ``docs/methods/mlds.md``
says which part is which and why. In the ablation the global tag term is dropped (a softmax head
has no multi-label reading), so boxes and tags act only through the teacher's filtering.

The teacher sees the image with a small clipped Gaussian noise (SSL4MIS's mean teacher) and is
what gets evaluated (``inference: teacher``), as in ``mean_teacher``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from frugalseg.choices import StrEnum
from frugalseg.losses.multilabel_deep_supervision import (
    MLDSActivation,
    MLDSReduction,
    box_positive_map,
    global_tag_loss,
    multilabel_deep_supervision_loss,
    ordinary_deep_supervision_loss,
)
from frugalseg.losses.partial_ce import partial_cross_entropy
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput
from frugalseg.training.collectives import group_world_size
from frugalseg.training.ema import make_teacher
from frugalseg.training.schedules import sigmoid_rampup

__all__ = ["MLDS", "DeepSupervision", "InferenceNetwork", "MLDSOptions", "filter_predictions",
           "pseudo_label_candidates"]


class DeepSupervision(StrEnum):
    """How the deep-supervision heads are trained."""

    MULTILABEL = "multilabel"  # MLDS: max-pooled multi-hot targets, sigmoid BCE, global tag loss
    ORDINARY = "ordinary"  # the paper's ablation: nearest-neighbour labels, softmax CE, no tag loss


class InferenceNetwork(StrEnum):
    """Which network is evaluated and exported."""

    TEACHER = "teacher"
    STUDENT = "student"


class MLDSOptions(MethodOptions):
    """Hyper-parameters of MLDS. The official code fixes the network and the MLDS loss (activation,
    reduction); everything else is not published in a form available to us, and the defaults follow
    frugalseg's ``mean_teacher`` row so that the two differ by the method only (``docs/methods/mlds.md``)."""

    deep_supervision: DeepSupervision = Field(
        default=DeepSupervision.MULTILABEL, description="'multilabel' (MLDS) or 'ordinary' (the paper's ablation)"
    )
    activation: MLDSActivation = Field(default=MLDSActivation.SIGMOID, description="head activation (official)")
    reduction: MLDSReduction = Field(
        default=MLDSReduction.SUM, description="'sum' over the batch (official) or 'mean' over supervised images"
    )
    ce_weight: float = Field(default=1.0, ge=0.0, description="λ_ce, the full-resolution cross-entropy")
    ds_weight: float = Field(default=1.0, ge=0.0, description="λ_ds, the deep-supervision term (official: 1)")
    tag_weight: float = Field(default=1.0, ge=0.0, description="λ_tag, the global tag loss (multilabel only)")
    box_positive_heads: int = Field(
        default=2, ge=0, description="coarsest heads whose targets count a cell touching a box of c as positive"
    )
    pseudo_weight: float = Field(default=1.0, ge=0.0, description="weight of the pseudo-label terms after ramp-up")
    rampup_fraction: float = Field(
        default=1.0, ge=0.0, le=1.0, description="sigmoid ramp-up of the pseudo-label weight over this fraction"
    )
    confidence_threshold: float = Field(
        default=0.0, ge=0.0, le=1.0, description="pseudo-label only pixels whose filtered probability reaches this"
    )
    noise_std: float = Field(default=0.1, ge=0.0, description="Gaussian noise on the teacher's input (SSL4MIS)")
    noise_clip: float = Field(default=0.2, ge=0.0, description="the noise is clipped to ±noise_clip")
    ema_decay: float = Field(default=0.99, ge=0.0, le=1.0, description="teacher EMA decay (SSL4MIS: 0.99)")
    inference: InferenceNetwork = Field(default=InferenceNetwork.TEACHER, description="'teacher' or 'student'")


def filter_predictions(logits: Tensor, candidates: Tensor) -> Tensor:
    """Teacher probabilities restricted to each pixel's candidate classes: ``softmax`` over ``K`` only.

    Logits of classes outside a pixel's candidate set are set to −∞ before the softmax, so an absent
    tag gets probability 0 everywhere, class c gets 0 outside its boxes, and a clicked (or masked)
    pixel gets probability 1 for its class. A pixel with no candidate at all (contradictory
    annotations) keeps the unfiltered softmax. This is the rule of the authors' later code
    (``Simael/DSP`` ``prediction_filtering_with_softmax``) with frugalseg's box semantics: a box of c
    only removes c outside it, so background and other classes stay possible inside it.

    Args:
        logits: (B, C, H, W) teacher logits.
        candidates: (B, C, H, W) bool candidate-label map.

    Returns:
        (B, C, H, W) fp32 probabilities, zero outside the candidates, summing to 1 over classes.
    """
    if candidates.shape != logits.shape or candidates.dtype != torch.bool:
        raise ValueError(f"candidates must be a bool tensor of shape {tuple(logits.shape)}; "
                         f"got {candidates.dtype} {tuple(candidates.shape)}")
    allowed = candidates | ~candidates.any(dim=1, keepdim=True)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return torch.softmax(logits.float().masked_fill(~allowed, float("-inf")), dim=1)


def pseudo_label_candidates(probs: Tensor, candidates: Tensor, threshold: float = 0.0) -> Tensor:
    """The pseudo-label as a candidate map: one-hot argmax where confident, the weak candidates elsewhere.

    Args:
        probs: (B, C, H, W) filtered teacher probabilities (:func:`filter_predictions`).
        candidates: (B, C, H, W) bool weak candidate map, kept where the teacher is not confident.
        threshold: a pixel is pseudo-labelled when its highest probability is at least this (0: all).

    Returns:
        (B, C, H, W) bool; a singleton at every confident pixel, inside ``candidates`` wherever the
        pixel has any candidate.
    """
    confidence, label = probs.max(dim=1)
    hard = F.one_hot(label, probs.shape[1]).permute(0, 3, 1, 2).bool()
    return torch.where((confidence >= threshold).unsqueeze(1), hard, candidates)


@register_method("mlds")
class MLDS(Method[MLDSOptions]):
    """Student U-Net with deep-supervision heads + EMA teacher whose filtered predictions supervise every scale."""

    Options = MLDSOptions

    def __init__(self, options: MLDSOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        student = build_net()
        heads = getattr(student, "deep_heads", None)
        if heads is None or len(heads) == 0:
            raise ValueError("method 'mlds' trains deep-supervision heads: set model.deep_supervision: true")
        if options.box_positive_heads > len(heads):
            raise ValueError(f"box_positive_heads = {options.box_positive_heads} but the network has "
                             f"{len(heads)} deep-supervision heads")
        self.nets["student"] = student
        self.teachers["teacher"] = make_teacher(student)
        self.ema_decay = options.ema_decay

    @classmethod
    def requirements(cls, options: MLDSOptions) -> dict[str, Any]:
        # Every item teaches something (unlabelled ones through the teacher); mask items get fixed slots.
        return {"sample": "all", "two_stream": True}

    @property
    def ema_pairs(self) -> list[tuple[str, str]]:
        return [("teacher", "student")]

    def inference_network(self) -> nn.Module:
        opts = self.options
        return self.teachers["teacher"] if opts.inference == InferenceNetwork.TEACHER else self.nets["student"]

    def pseudo_weight_at(self, ctx: StepContext) -> float:
        """w(t): ``pseudo_weight`` times the sigmoid ramp-up over ``rampup_fraction`` of the run."""
        opts = self.options
        return opts.pseudo_weight * sigmoid_rampup(ctx.iteration, opts.rampup_fraction * ctx.max_iterations)

    @torch.no_grad()
    def teacher_candidates(self, image: Tensor, candidates: Tensor) -> Tensor:
        """K̂: the teacher's prediction on (noisy) ``image``, filtered by ``candidates``, as a candidate map."""
        opts = self.options
        noise = torch.clamp(torch.randn_like(image) * opts.noise_std, -opts.noise_clip, opts.noise_clip)
        logits = self.teachers["teacher"](image + noise)
        return pseudo_label_candidates(filter_predictions(logits, candidates), candidates, opts.confidence_threshold)

    def batch_sum_factor(self) -> float:
        """What turns each rank's batch sum into the global one under DDP (1 otherwise, or with ``reduction: mean``).

        With ``reduction: sum`` a term is a sum over the images of the batch. Under DDP each rank sums
        its share and DDP averages the gradients over the ranks, which would divide the term by the
        number of ranks; multiplying by it makes the update (and the logged value, an average over
        ranks) that of one process on the global batch, as for the per-pixel means.
        """
        opts = self.options
        return float(group_world_size()) if opts.reduction == MLDSReduction.SUM else 1.0

    def deep_loss(self, deep: list[Tensor], candidates: Tensor, box_label: Tensor | None,
                  box_cut: Tensor | None = None) -> Tensor:
        """The deep-supervision term DS of the module docstring (box positives only when ``box_label`` is given).

        ``box_cut`` (B, C, H, W): where a class's only boxes were cut by a crop window (the dataset's key), which
        no longer hold the class in every row and column: no box positives there.
        """
        opts = self.options
        if opts.deep_supervision == DeepSupervision.ORDINARY:
            loss = ordinary_deep_supervision_loss(deep, candidates, reduction=opts.reduction)
        else:
            use_boxes = box_label is not None and opts.box_positive_heads > 0
            boxes = box_positive_map(candidates, box_label) if box_label is not None and use_boxes else None
            if boxes is not None and box_cut is not None:
                boxes = boxes & ~box_cut
            loss = multilabel_deep_supervision_loss(
                deep, candidates, box_positives=boxes, box_positive_heads=opts.box_positive_heads,
                activation=opts.activation, reduction=opts.reduction,
            )
        return loss * self.batch_sum_factor()

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        opts = self.options
        image, candidates = batch["image"], batch["candidates"]
        out = self.net("student")(image, return_features=True)
        logits, deep = out.logits, out.deep
        losses = {
            "ce": partial_cross_entropy(logits, candidates),
            "ds": self.deep_loss(deep, candidates, batch["box_label"], batch.get("box_cut")),
        }
        weights = {"ce": opts.ce_weight, "ds": opts.ds_weight}
        if opts.deep_supervision == DeepSupervision.MULTILABEL:
            losses["tag"] = self.batch_sum_factor() * global_tag_loss(
                deep[0], batch["presence"], activation=opts.activation, reduction=opts.reduction
            )
            weights["tag"] = opts.tag_weight
        weak = ~batch["has_mask"]
        if weak.any():
            pseudo = self.teacher_candidates(image[weak], candidates[weak])
            losses["pseudo_ce"] = partial_cross_entropy(logits[weak], pseudo)
            losses["pseudo_ds"] = self.deep_loss([d[weak] for d in deep], pseudo, None)
        else:  # a batch of masks only: the teacher has nothing to add
            losses["pseudo_ce"] = losses["pseudo_ds"] = logits.sum().float() * 0.0
        w = self.pseudo_weight_at(ctx)
        weights["pseudo_ce"] = w * opts.ce_weight
        weights["pseudo_ds"] = w * opts.ds_weight
        return StepOutput(losses, weights)
