r"""``pscv``: point-supervised contrastive variance (En & Guo, BMVC 2024; arXiv 2212.08774).

PSCV trains one segmentation network from one click per class and slice. The clicked pixels
get a partial cross-entropy; *every* pixel, clicked or not, takes part in the contrastive
variance (CV) loss, which compares per-class variance maps across the images of the batch::

    L(t)  = L_pCE + λ(t) · L_CV
    λ(t)  = λ · exp(−5 (1 − min(t, R)/R)²)        with R = rampup_fraction · T; λ(t) = λ when R = 0

    L_pCE = − 1/|Ω| Σ_{(i, j) ∈ Ω} log p_i[y_ij, j]                 Ω: pixels whose candidate set is {y_ij}
    c_ik  = Σ_j p_i[k, j] x_ij / Σ_j p_i[k, j]                       soft mean intensity of class k in image i
    z_ik  = p_i[k, ·] ⊙ (x_i − c_ik)²                                 variance map of class k in image i
    L_CV  = mean over the anchors a = (i, k) of ℓ(a),                  s_ab = cos(z_a, z_b) / τ
    ℓ(a)  = − 1/|P(a)| Σ_{b ∈ P(a)} log[ e^{s_ab} / (e^{s_ab} + Σ_{n ∈ N(a)} e^{s_an}) ]
    P(a)  = {(j, k) : j ≠ i}                                          same class, other images
    N(a)  = {(j', k') : k' ≠ k}                                       other classes (j' ≠ i only if "other_images")

with ``cos`` the cosine similarity of flattened maps, ``p`` the softmax of the network, ``x`` the
(augmented) input image and T the run's iterations. The formula of ``L_CV`` beyond what the abstract
and the public reviews say is our reconstruction: see :mod:`frugalseg.losses.contrastive_variance`
and ``docs/methods/pscv.md``. Nothing is detached: the gradient of ``L_CV`` reaches the network
through every pixel's probability, the class means included.

Clicks, scribbles and full masks all give singleton candidate sets, so the same method runs on
points (the paper's setting) or scribbles. The engine samples only labelled items (an item with
no singleton pixel teaches pCE nothing, and PSCV's setting has none).

Distributed training: the engine splits ``train.batch_size`` over the ranks. By default the logits
and images of all ranks are gathered (``torch.distributed.nn.functional.all_gather``, which carries
gradients back to each rank's own images), so that every rank contrasts the whole global batch and
the gradient is the one a single process would compute on that batch, whatever the number of GPUs.
``gather_across_ranks: false`` contrasts each rank's share only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from frugalseg.losses.contrastive_variance import CVNegatives, contrastive_variance_loss
from frugalseg.losses.partial_ce import partial_cross_entropy
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput
from frugalseg.training.collectives import gather_from_ranks
from frugalseg.training.schedules import sigmoid_rampup


class PSCVOptions(MethodOptions):
    """Hyper-parameters of PSCV. The paper's λ and τ were not available to us: the defaults are the best
    of the grid λ ∈ {0.01, 0.1, 1} × τ ∈ {0.1, 0.5} on the ACDC validation patients (``docs/methods/pscv.md``,
    "Choosing λ and τ")."""

    cv_weight: float = Field(default=0.1, ge=0.0, description="λ, the weight of the CV loss (after the ramp-up)")
    temperature: float = Field(default=0.5, gt=0.0, description="τ of the CV loss's InfoNCE")
    rampup_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="sigmoid ramp-up of λ over this fraction of the run; 0 = none (the paper mentions none)",
    )
    negatives: CVNegatives = Field(
        default=CVNegatives.ALL,
        description="'all': other classes of every image (own image included) are negatives; 'other_images'",
    )
    include_background: bool = Field(default=True, description="background maps take part in the contrast")
    gather_across_ranks: bool = Field(
        default=True, description="under DDP, contrast the global batch (all ranks) instead of each rank's share"
    )


def cv_weight_at(options: PSCVOptions, ctx: StepContext) -> float:
    """λ(t): ``cv_weight`` times the mean-teacher sigmoid ramp-up over ``rampup_fraction`` of the run."""
    return options.cv_weight * sigmoid_rampup(ctx.iteration, options.rampup_fraction * ctx.max_iterations)


@register_method("pscv")
class PSCV(Method[PSCVOptions]):
    """Partial cross-entropy on singleton pixels + λ · contrastive variance on all pixels (one U-Net)."""

    Options = PSCVOptions

    def __init__(self, options: PSCVOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        self.nets["student"] = build_net()

    @classmethod
    def requirements(cls, options: PSCVOptions) -> dict[str, Any]:
        return {"sample": "labelled"}

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        opts = self.options
        image = batch["image"]
        logits = self.net("student")(image)
        pce = partial_cross_entropy(logits, batch["candidates"])
        if opts.gather_across_ranks:
            cv_logits, cv_image = gather_from_ranks(logits, True), gather_from_ranks(image, True)
        else:
            cv_logits, cv_image = logits, image
        cv = contrastive_variance_loss(
            cv_logits,
            cv_image,
            opts.temperature,
            negatives=opts.negatives,
            include_background=opts.include_background,
        )
        return StepOutput({"pce": pce, "cv": cv}, {"pce": 1.0, "cv": cv_weight_at(opts, ctx)})
