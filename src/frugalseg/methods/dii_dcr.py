r"""``dii_dcr``: hybrid supervision, learned per-instance weights (DII), dynamic co-regularisation (DCR).

Pan, Bi, Yang, Zhu & Bian, *Label-Efficient Hybrid-Supervised Learning for Medical Image Segmentation*,
AAAI 2022 (arXiv 2203.05956), after the authors' code ``DesertsP/Hybrid-Supervised-Segmentation``.
A few items carry full masks (strong), the rest weak labels filled into dense but unreliable masks
(boxes: the box's class inside it, smaller boxes on top, background outside). Each weak *instance* k
(a box by default) has a weight γ_k ∈ [0, 1]. Two networks f₁, f₂ (different initialisations) each
minimise, on a batch with strong items S and weak items W::

    L_n   = a · CE_S(f_n) + b · Dice_S(f_n) + c · CE_W^γ(f_n)
    CE_W^γ = Σ_{p ∈ W} w_p · CE(f_n(x)_p, y_p) / |W's labelled pixels|,   w_p = γ_k inside instance k, 1 elsewhere

and together ``λ(t) · L_cr`` (:func:`~frugalseg.losses.co_regularisation.cross_pseudo_supervision`): each
network learns the other's argmax on CutMix-mixed images, weighted by the mixed images' trust. After the
optimiser step, for every weak instance of the batch::

    ∂L_S/∂γ_k = Σ_n − ḡ_S(f_n) · g_k(f_n)        (gradients of the final classifier only, exact)

is gathered; every τ iterations each instance seen since the last update takes one Adam step on the
mean of its values, and γ is clipped to [0, 1] (:mod:`frugalseg.losses.instance_weighting`). ḡ_S is
the moving average of the strong-loss gradient.

``dii: false`` keeps every γ at 1 (naive hybrid training); ``dcr: false`` trains one network without
the co-regularisation. ``docs/methods/dii_dcr.md`` lists what is the paper's, what the code's, and what
is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from frugalseg.choices import StrEnum
from frugalseg.losses.co_regularisation import cross_pseudo_supervision, cutmix_masks, mix
from frugalseg.losses.dice import dice_ce_loss
from frugalseg.losses.instance_weighting import (
    IndicatorOptimizer,
    cross_entropy_error,
    influence,
    segment_classifier_gradients,
    weighted_cross_entropy,
)
from frugalseg.methods.dii_state import InstanceIndicators
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput
from frugalseg.training.collectives import reduce_across_ranks
from frugalseg.training.schedules import poly_lr_factor, sigmoid_rampup

__all__ = ["CRWeighting", "DIIDCR", "DIIDCROptions", "Granularity", "InferenceNet", "SoftmaxAverage"]


class Granularity(StrEnum):
    """What one γ weighs: a ``box`` (one per connected component, as simulated), a ``class`` of an image
    (the code's region variant), or a whole weak ``image`` (the code's per-sample variant)."""

    BOX = "box"
    CLASS = "class"
    IMAGE = "image"


class CRWeighting(StrEnum):
    """Trust of a mixed image: ``pair`` = (γ̄_i + γ̄_j)/2 (``dii_aided_dcr.py``); ``pixel`` = the two images'
    per-pixel weight maps mixed like the images (``indicator_learner_hybrid.py``)."""

    PAIR = "pair"
    PIXEL = "pixel"


class InferenceNet(StrEnum):
    """What is evaluated: the ``first`` network (the authors' code) or the ``average`` of both softmaxes."""

    FIRST = "first"
    AVERAGE = "average"


class DIIDCROptions(MethodOptions):
    """Hyper-parameters. The medical settings of the paper were not available to us; the defaults follow the
    authors' code in its one configuration with the paper's γ ∈ [0, 1] (``voc_cls_coarse``: γ₀ 0.5, Adam
    0.02), its update interval of 20 (``v3_voc_hybrid``, ``coco_hybrid``), its EMA of the strong gradient
    (0.9), and SSL4MIS's 0.5·(CE + Dice) for the strong term (docs/methods/dii_dcr.md)."""

    dii: bool = Field(default=True, description="learn γ; false: every weak instance weighs 1 (naive hybrid)")
    dcr: bool = Field(default=True, description="two networks + co-regularisation; false: one network")
    instance: Granularity = Field(default=Granularity.BOX, description="what one γ weighs: box | class | image")
    gamma_init: float = Field(default=0.5, ge=0.0, le=1.0, description="γ before any update")
    indicator_lr: float = Field(default=0.02, gt=0.0, description="β, the step size of γ")
    indicator_optimizer: IndicatorOptimizer = Field(default=IndicatorOptimizer.ADAM, description="adam | sgd")
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(default=1e-8, gt=0.0)
    indicator_poly_power: float = Field(
        default=0.9, ge=0.0, description="β follows (1 − t/T)^power, as the network's learning rate; 0: constant"
    )
    update_every: int = Field(default=20, ge=1, description="τ: iterations between two γ updates")
    start_fraction: float = Field(
        default=0.05, ge=0.0, lt=1.0, description="γ is learnt from this fraction of the run on (warm-up)"
    )
    strong_grad_ema: float = Field(
        default=0.9, ge=0.0, lt=1.0, description="moving average of the strong gradient; 0: current batch only"
    )
    ce_weight: float = Field(default=0.5, ge=0.0, description="weight of the strong cross-entropy")
    dice_weight: float = Field(default=0.5, ge=0.0, description="weight of the strong Dice loss")
    weak_weight: float = Field(default=0.5, ge=0.0, description="weight of the γ-weighted weak cross-entropy")
    cr_weight: float = Field(default=0.5, ge=0.0, description="λ, weight of the co-regularisation")
    cr_rampup_fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="sigmoid ramp-up of λ; 0: none")
    cr_weighting: CRWeighting = Field(default=CRWeighting.PAIR, description="pair | pixel")
    cutmix_area: float = Field(default=0.5, gt=0.0, lt=1.0, description="share of the image the CutMix box covers")
    inference: InferenceNet = Field(default=InferenceNet.FIRST, description="first | average")

    @model_validator(mode="after")
    def _average_needs_two(self) -> DIIDCROptions:
        if self.inference == InferenceNet.AVERAGE and not self.dcr:
            raise ValueError("inference 'average' needs two networks (dcr: true)")
        return self


class SoftmaxAverage(nn.Module):
    """The two peers as one network: ``log(mean_n softmax(f_n(x)))``.

    Its argmax is the argmax of the averaged probabilities and its softmax gives them back exactly, so
    evaluation code written for logits (argmax, or softmax then resize) works unchanged.
    """

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: Tensor) -> Tensor:
        probs = torch.stack([torch.softmax(net(x).float(), dim=1) for net in self.nets]).mean(dim=0)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))


def hybrid_target(batch: Batch) -> Tensor:
    """(B, H, W) the label each pixel is trained on: the mask on strong items, the box mask on weak ones."""
    strong = batch["has_mask"].reshape(-1, 1, 1)
    return torch.where(strong, batch["label"], batch["box_label"])


def instance_slots(batch: Batch, granularity: Granularity) -> Tensor:
    """(B, H, W) int64: which instance of its item a weak pixel belongs to, -1 for none.

    ``box``: the box drawn on top there (``box_index``); ``class``: that box's class; ``image``: 0 on every
    labelled pixel of a weak item (background outside the boxes included, as a per-image weight covers
    the whole image). Strong items and pixels outside every box (box and class granularity) belong to
    no instance: their weight stays 1.
    """
    weak = ~batch["has_mask"].reshape(-1, 1, 1)
    if granularity == Granularity.BOX:
        slots = batch["box_index"]
    elif granularity == Granularity.CLASS:
        slots = torch.where(batch["box_index"] >= 0, batch["box_label"], -1)
    else:
        slots = torch.where(batch["box_label"] >= 0, 0, -1)
    return torch.where(weak, slots, -1)


@dataclass
class BatchInstances:
    """The distinct weak instances of a batch: keys ``(items[k], slots[k])`` and a segment map onto them."""

    items: Tensor
    slots: Tensor
    segments: Tensor

    @classmethod
    def of(cls, index: Tensor, slots: Tensor) -> BatchInstances:
        """From the batch's item indices (B,) and the slot map (B, H, W)."""
        valid = slots >= 0
        width = int(slots.max()) + 1 if valid.any() else 1
        keys = torch.where(valid, index.reshape(-1, 1, 1) * width + slots, -1)
        unique, inverse = torch.unique(keys[valid], return_inverse=True)
        segments = torch.full_like(slots, -1)
        segments[valid] = inverse
        return cls(unique // width, unique % width, segments)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class _Pending:
    """What the DII update needs from one training step (all detached), consumed by ``on_step_end``."""

    features: list[Tensor]
    logits: list[Tensor]
    target: Tensor
    strong: Tensor
    instances: BatchInstances


@register_method("dii_dcr")
class DIIDCR(Method[DIIDCROptions]):
    """Two co-regularised U-Nets (or one) trained on strong masks and γ-weighted weak masks."""

    Options = DIIDCROptions

    def __init__(self, options: DIIDCROptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        self.nets["student"] = build_net()
        if options.dcr:
            self.nets["peer"] = build_net()
        head = self._classifier("student")
        self.indicators: InstanceIndicators = InstanceIndicators(
            options.gamma_init, len(self.nets), sum(p.numel() for p in head.parameters())
        )
        self._pending: _Pending | None = None

    @classmethod
    def requirements(cls, options: DIIDCROptions) -> dict[str, Any]:
        # Every batch holds strong items (two-stream sampling): the strong gradient needs them at every step.
        return {"sample": "all", "two_stream": True}

    def _classifier(self, name: str) -> nn.Conv2d:
        head = getattr(self.nets[name], "head", None)
        if not isinstance(head, nn.Conv2d):
            raise ValueError(f"dii_dcr needs networks whose final classifier is one Conv2d (`head`), as the U-Net's "
                             f"conv3x3 head; got {type(head).__name__}")
        return head

    def inference_network(self) -> nn.Module:
        opts = self.options
        if opts.inference == InferenceNet.AVERAGE:
            return SoftmaxAverage([self.nets["student"], self.nets["peer"]])
        return self.nets["student"]

    # ----- the losses -----------------------------------------------------------------------------------------
    def pixel_weights(self, batch: Batch, instances: BatchInstances) -> tuple[Tensor, Tensor, Tensor]:
        """Per-pixel loss weights (B, H, W), each image's trust (B,) and the instances' γ (K,).

        A pixel weighs the γ of its instance, 1 outside every instance. An image's trust is the mean γ of
        its instances (1 with none: a strong or an unlabelled image). Without DII every weight is 1.
        """
        opts = self.options
        b = batch["image"].shape[0]
        device = batch["image"].device
        weights = torch.ones(batch["box_label"].shape, device=device)
        trust = torch.ones(b, device=device)
        if not opts.dii or not len(instances):
            return weights, trust, torch.ones(len(instances), device=device)
        gamma = self.indicators.lookup(instances.items, instances.slots).to(device)
        inside = instances.segments >= 0
        weights[inside] = gamma[instances.segments[inside]]
        # present[b, k]: instance k has pixels in image b (column 0 collects the pixels of no instance)
        present = torch.zeros(b, len(instances) + 1, device=device)
        present.scatter_(1, instances.segments.reshape(b, -1) + 1, 1.0)
        present = present[:, 1:]
        count = present.sum(dim=1)
        trust = torch.where(count > 0, (present @ gamma) / count.clamp_min(1), trust)
        return weights, trust, gamma

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        opts = self.options
        image = batch["image"]
        b = image.shape[0]
        strong = batch["has_mask"]
        target = hybrid_target(batch)
        instances = BatchInstances.of(batch["index"], instance_slots(batch, opts.instance))
        weights, trust, gamma = self.pixel_weights(batch, instances)

        names = list(self.nets)
        if opts.dcr:
            mask = cutmix_masks(b, image.shape[-2], image.shape[-1], opts.cutmix_area, device=image.device)
            partner = torch.arange(b, device=image.device).roll(-1)  # each image mixed with the next
            inputs = torch.cat([image, mix(image, mask, partner)])
        else:
            inputs = image
        outputs = {n: self.net(n)(inputs, return_features=True) for n in names}

        terms: dict[str, list[Tensor]] = {"ce": [], "dice": [], "ce_weak": []}
        for n in names:
            logits = outputs[n].logits[:b]
            if strong.any():
                ce, dice = dice_ce_loss(logits[strong], target[strong])
            else:
                ce = dice = logits.sum() * 0.0
            terms["ce"].append(ce)
            terms["dice"].append(dice)
            terms["ce_weak"].append(weighted_cross_entropy(logits[~strong], target[~strong], weights[~strong]))
        # Summed over the networks: each network's parameters get exactly their own loss's gradient.
        losses = {k: torch.stack(v).sum() for k, v in terms.items()}
        loss_weights = {"ce": opts.ce_weight, "dice": opts.dice_weight, "ce_weak": opts.weak_weight}

        if opts.dcr:
            first, second = (outputs[n].logits for n in names)
            # each network's argmax on the un-mixed images, mixed like the images (no gradient)
            pseudo = [mix(logits[:b].detach().argmax(dim=1), mask, partner) for logits in (first, second)]
            if opts.cr_weighting == CRWeighting.PAIR:
                cr_w = (trust + trust[partner]) / 2
            else:
                cr_w = mix(weights, mask, partner)
            losses["cr"] = cross_pseudo_supervision(first[b:], second[b:], pseudo[0], pseudo[1], cr_w)
            loss_weights["cr"] = opts.cr_weight * sigmoid_rampup(ctx.iteration,
                                                                 opts.cr_rampup_fraction * ctx.max_iterations)

        self._pending = None
        if opts.dii and ctx.iteration >= self._start(ctx):
            self._pending = _Pending(
                features=[outputs[n].features[-1][:b].detach() for n in names],
                logits=[outputs[n].logits[:b].detach() for n in names],
                target=target, strong=strong, instances=instances,
            )
        return StepOutput(losses, loss_weights, self._gamma_metrics(gamma) if opts.dii else {})

    def _gamma_metrics(self, batch_gamma: Tensor) -> dict[str, float]:
        """Where γ stands, for the logs (the same keys at every step: the CSV's columns are fixed by its first row)."""
        opts = self.options
        table = self.indicators
        updated = table.gamma[table.steps > 0]
        return {
            "gamma_batch_mean": float(batch_gamma.mean()) if len(batch_gamma) else opts.gamma_init,
            "gamma_updated_mean": float(updated.mean()) if len(updated) else opts.gamma_init,
            "gamma_updated_instances": float(len(updated)),
        }

    # ----- the DII update -------------------------------------------------------------------------------------
    def _start(self, ctx: StepContext) -> int:
        opts = self.options
        return int(opts.start_fraction * ctx.max_iterations)

    @torch.no_grad()
    def on_step_end(self, ctx: StepContext) -> None:
        """Gather ``∂L_S/∂γ`` of the batch's instances; every τ iterations, step γ (identically on every rank)."""
        opts = self.options
        pending, self._pending = self._pending, None
        if pending is None:
            return
        with torch.autocast(pending.target.device.type, enabled=False):
            hyper = self._hypergradients(pending, opts)
        self.indicators.add_hypergrads(pending.instances.items, pending.instances.slots, hyper)
        if (ctx.iteration + 1 - self._start(ctx)) % opts.update_every == 0:
            lr = opts.indicator_lr * poly_lr_factor(ctx.iteration, ctx.max_iterations, opts.indicator_poly_power)
            self.indicators.step(lr, opts.indicator_optimizer, opts.adam_betas, opts.adam_eps)

    def _hypergradients(self, pending: _Pending, opts: DIIDCROptions) -> Tensor:
        """``∂L_S/∂γ_k = Σ_n − ḡ_S(f_n) · g_k(f_n)`` for the batch's instances (K,), classifier gradients only.

        ḡ_S is the moving average of the mean strong-pixel gradient, summed over all ranks before
        averaging, so every rank uses the same ḡ_S; g_k is the instance's mean-loss gradient.
        """
        strong_segments = torch.where(pending.strong.reshape(-1, 1, 1) & (pending.target >= 0), 0, -1)
        weak_target = torch.where(pending.instances.segments >= 0, pending.target, -1)
        k = len(pending.instances)
        strong_sums, instance_grads = [], []
        for n, (features, logits) in enumerate(zip(pending.features, pending.logits, strict=True)):
            head = self._classifier(list(self.nets)[n])
            s_sum, s_count = segment_classifier_gradients(
                features, cross_entropy_error(logits, pending.target), strong_segments, 1, head)
            strong_sums.append(torch.cat([s_sum[0], s_count]))
            g_sum, g_count = segment_classifier_gradients(
                features, cross_entropy_error(logits, weak_target), pending.instances.segments, k, head)
            instance_grads.append(g_sum / g_count.clamp_min(1).unsqueeze(1))
        totals = reduce_across_ranks(torch.stack(strong_sums))  # (networks, P + 1): sums and pixel counts
        current = totals[:, :-1] / totals[:, -1:].clamp_min(1)
        if float(totals[:, -1].min()) == 0:  # no strong pixel on any rank: nothing to align with
            return torch.zeros(k, device=totals.device)
        strong_grad = self.indicators.update_strong_grad(current, opts.strong_grad_ema)
        hyper = torch.zeros(k, device=totals.device)
        for n, grads in enumerate(instance_grads):
            hyper += influence(strong_grad[n], grads)
        return hyper
