r"""``action``: anatomical-aware contrastive distillation in three stages (You et al., IPMI 2023).

Chenyu You, Weicheng Dai, Yifei Min, Lawrence Staib, James S. Duncan, *Rethinking Semi-Supervised Medical
Image Segmentation: A Variance-Reduction Perspective* / *ACTION*, IPMI 2023 (arXiv 2206.02307), after the
official code ``charlesyou999648/ACTION`` @ 77730a7. A few slices carry masks, the rest nothing. One run,
three consecutive stages (:meth:`ACTION.stages`; the engine restarts the poly learning rate and the
optimiser state at each):

(i) ``global``: contrastive distillation of the bottleneck. The student sees a strong view (brightness/
    contrast jitter, Gaussian blur), the EMA teacher the weak one (the image as the dataset augmented it).
    Global embeddings: pool + two linear layers (student: + a predictor); the student matches the teacher's
    distribution of similarities to a queue of past teacher embeddings::

        L_i = k1 · KL( softmax(cos(z_t, A)/τ_t) ‖ softmax(cos(z_s, A)/τ_s) )

    Only the encoder and the global heads get a gradient: the decoder stays as initialised, as the
    official stage (i) freezes it.
(ii) ``local``: the same on windows of the logit map (one embedding per window, compared with the same
    window of the queued teacher maps), plus the supervised loss on the mask items::

        L_ii = 0.5 · (CE + Dice) + k1 · L_global + k2 · L_local

(iii) ``finetune``: the teacher is re-initialised from the student; then per step the teacher labels the
    unlabelled images (argmax ŷ, confidence ĉ), image, ŷ and ĉ are CutMix-ed together (a box of half the
    image from the next unlabelled image) and photometrically jittered, and the student learns::

        L_iii = 0.5 · (CE + Dice) + L_unsup + k_AnCo · L_AnCo

    with :func:`~frugalseg.losses.pseudo_label.confidence_weighted_cross_entropy` and
    :func:`~frugalseg.losses.anatomical_contrast.anatomical_contrast_loss` on a per-pixel representation
    head over the bottleneck and every decoder stage (``anco: false`` drops the term and the head).

The student is evaluated, as the official test script does. The anchor queues are buffers (checkpointed);
under DDP the teacher keys of all ranks are gathered before they are enqueued, so every rank holds the same
queues. Where we follow the paper rather than the code, and what we reconstruct: ``docs/methods/action.md``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from pydantic import Field, field_validator
from torch import Tensor

from frugalseg.data.intensity import random_brightness_contrast, random_gaussian_blur
from frugalseg.losses.anatomical_contrast import anatomical_contrast_loss
from frugalseg.losses.co_regularisation import cutmix_masks, mix
from frugalseg.losses.dice import dice_ce_loss
from frugalseg.losses.distillation import soft_distillation_kl
from frugalseg.losses.pseudo_label import confidence_weighted_cross_entropy, confident_fraction
from frugalseg.methods.anchor_queue import AnchorQueue
from frugalseg.methods.registry import register_method
from frugalseg.nets.heads import (
    GlobalProjection,
    LinearPredictor,
    RepresentationHead,
    WindowPredictor,
    WindowProjection,
)
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, Stage, StepContext, StepOutput
from frugalseg.training.collectives import gather_from_ranks
from frugalseg.training.ema import make_teacher
from frugalseg.training.schedules import split_iterations

__all__ = ["ACTION", "ACTIONOptions", "STAGES", "window_crops"]

STAGES = ("global", "local", "finetune")
"""The three stages, in order (the names of ``checkpoints/stage_<name>.pt``)."""


class ACTIONOptions(MethodOptions):
    """Hyper-parameters; defaults are the official 2D ACDC settings (``train_2D.sh`` and the scripts'
    defaults; methods/action.md §4.8), with the code-vs-paper resolutions of §4.9."""

    # ----- stages
    stage_split: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0),
        description="relative lengths of stages (i, ii, iii) within train.iterations (official: 30k each); "
        "a 0 skips a stage",
    )
    pretrain_batch_size: int | None = Field(
        default=None, ge=1, description="batch of stages i-ii (official: 6); unset: train.batch_size"
    )
    pretrain_mask_items: int | None = Field(
        default=None, ge=1, description="mask items per stage i-ii batch (official: 3); unset: half the batch"
    )
    ema_decay: float = Field(default=0.99, gt=0.0, lt=1.0, description="teacher EMA momentum m")
    # ----- stages i-ii: contrastive distillation
    queue_size: int = Field(default=36, ge=1, description="K, anchors in each queue")
    global_dim: int = Field(default=512, ge=1, description="global embedding size (2D: 512)")
    student_temperature: float = Field(default=0.1, gt=0.0, description="τ_s")
    teacher_temperature: float = Field(default=0.01, gt=0.0, description="τ_t")
    global_weight: float = Field(default=1.0, ge=0.0, description="k1, weight of the global distillation")
    local_weight: float = Field(default=1.0, ge=0.0, description="k2, weight of the local distillation")
    local_window: float = Field(
        default=0.25, gt=0.0, le=1.0, description="window side / input side (official: 64 of 256); stride half"
    )
    local_pool: int = Field(default=8, ge=1, description="each window is pooled to local_pool x local_pool")
    view_jitter: float = Field(default=0.2, ge=0.0, lt=1.0, description="student view: brightness/contrast ±")
    view_jitter_p: float = Field(default=0.5, ge=0.0, le=1.0)
    view_blur_p: float = Field(default=0.5, ge=0.0, le=1.0)
    blur_sigma: tuple[float, float] = Field(default=(0.15, 1.15), description="Gaussian blur σ range (pixels)")
    # ----- stage iii: fine-tuning
    ce_weight: float = Field(default=0.5, ge=0.0)
    dice_weight: float = Field(default=0.5, ge=0.0)
    unsup_weight: float = Field(default=1.0, ge=0.0, description="weight of the pseudo-label cross-entropy")
    anco: bool = Field(default=True, description="anatomical contrast on (false: the ablation without L_AnCo)")
    anco_weight: float = Field(default=0.01, ge=0.0, description="k1 of stage iii (code, ARCO: 0.01)")
    strong_threshold: float = Field(default=0.97, ge=0.0, le=1.0, description="θ_s: confident / hard")
    weak_threshold: float = Field(default=0.7, ge=0.0, le=1.0, description="pseudo-labels valid for AnCo")
    num_queries: int = Field(default=256, ge=1, description="hard queries per class")
    num_negatives: int = Field(default=512, ge=1, description="negatives per query")
    anco_temperature: float = Field(default=0.5, gt=0.0)
    representation_dim: int = Field(default=512, ge=1, description="per-pixel embedding size")
    representation_stride: int = Field(
        default=1, ge=1, description="representation grid = input / stride (paper: 1, the input resolution)"
    )
    cutmix_area: float = Field(default=0.5, gt=0.0, lt=1.0, description="share of the image the CutMix box takes")
    mix_jitter: float = Field(default=0.25, ge=0.0, lt=1.0, description="mixed images: brightness/contrast ±")
    mix_jitter_p: float = Field(default=0.5, ge=0.0, le=1.0)
    mix_blur_p: float = Field(default=0.5, ge=0.0, le=1.0)
    finetune_nesterov: bool = Field(default=True, description="SGD with Nesterov momentum in stage iii (code)")

    @field_validator("stage_split")
    @classmethod
    def _some_stage(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(x < 0 for x in v) or not sum(v) > 0:
            raise ValueError(f"stage_split must be non-negative and not all zero; got {v}")
        return v

    @field_validator("blur_sigma")
    @classmethod
    def _sigma_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] <= v[1]:
            raise ValueError(f"blur_sigma must satisfy 0 <= low <= high; got {v}")
        return v


def window_crops(maps: Tensor, fraction: float) -> tuple[Tensor, int]:
    """Overlapping square-ish windows of ``maps`` (B, C, H, W): side ``fraction`` of each side, stride half a side.

    Every window that fits is taken (on 256x256 with fraction 0.25: offsets 0, 32, ..., 192 per axis, 49
    windows). Returns the windows as (B·W, C, h, w), image-major, and the window count W.
    """
    _, c, h, w = maps.shape
    wh, ww = max(1, round(fraction * h)), max(1, round(fraction * w))
    sh, sw = max(1, wh // 2), max(1, ww // 2)
    crops = maps.unfold(2, wh, sh).unfold(3, ww, sw)  # (B, C, nH, nW, wh, ww)
    b, _, nh, nw = crops.shape[:4]
    return crops.permute(0, 2, 3, 1, 4, 5).reshape(b * nh * nw, c, wh, ww), nh * nw


@register_method("action")
class ACTION(Method[ACTIONOptions]):
    """Student U-Net with global/local projection heads and predictors, an EMA teacher (U-Net + projection
    heads), two anchor queues, and a representation head for stage iii."""

    Options = ACTIONOptions
    ddp_find_unused_parameters = True  # each stage trains only some heads; stage i leaves the decoder alone

    def __init__(self, options: ACTIONOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        student = build_net()
        widths = getattr(student, "features", None)
        if not widths:
            raise TypeError("ACTION needs a U-Net that reports its level widths (`features`) and returns features")
        self.nets["student"] = student
        self.nets["global_projector"] = GlobalProjection(widths[-1], options.global_dim)
        self.nets["global_predictor"] = LinearPredictor(options.global_dim)
        self.nets["local_projector"] = WindowProjection(num_classes, options.local_pool)
        self.nets["local_predictor"] = WindowPredictor(num_classes)
        if options.anco:
            self.nets["representation"] = RepresentationHead(
                tuple(widths)[::-1], options.representation_dim, options.representation_stride
            )
        self.teachers["teacher"] = make_teacher(student)
        self.teachers["global_projector"] = make_teacher(self.nets["global_projector"])
        self.teachers["local_projector"] = make_teacher(self.nets["local_projector"])
        self.global_queue = AnchorQueue(options.queue_size, (options.global_dim,))
        self.local_queue = AnchorQueue(options.queue_size)  # (windows, C·pool²): known at the first local step
        self.ema_decay = options.ema_decay
        self._pending: dict[str, Tensor] = {}

    @classmethod
    def requirements(cls, options: ACTIONOptions) -> dict[str, Any]:
        return {"sample": "all", "two_stream": True}

    @property
    def ema_pairs(self) -> list[tuple[str, str]]:
        return [("teacher", "student"), ("global_projector", "global_projector"),
                ("local_projector", "local_projector")]

    # ----- stages ---------------------------------------------------------------------------------------------
    def stages(self, iterations: int) -> list[Stage]:
        """(i) global, (ii) local, (iii) finetune, with lengths in proportion to ``stage_split``."""
        o = self.options
        lengths = split_iterations(iterations, o.stage_split)
        batch, masks = o.pretrain_batch_size, o.pretrain_mask_items
        nesterov = {"nesterov": True} if o.finetune_nesterov else {}
        return [
            Stage(STAGES[0], lengths[0], batch_size=batch, mask_items_per_batch=masks),
            Stage(STAGES[1], lengths[1], batch_size=batch, mask_items_per_batch=masks),
            Stage(STAGES[2], lengths[2], optimizer=nesterov),
        ]

    def stage_of(self, ctx: StepContext) -> str:
        """The stage a context is in: its own name, or (a context built by hand) where its iteration falls."""
        if ctx.stage:
            return ctx.stage
        end = 0
        stages = [s for s in self.stages(ctx.max_iterations) if s.iterations > 0]
        for stage in stages:
            end += stage.iterations
            if ctx.iteration < end:
                return stage.name
        return stages[-1].name

    def on_stage_start(self, stage: Stage, ctx: StepContext) -> None:
        """Stage iii starts from the stage-ii student for both networks (the official ``--resume``)."""
        self._pending = {}
        if stage.name == STAGES[2]:
            self.teachers["teacher"].load_state_dict(self.nets["student"].state_dict())

    # ----- training -------------------------------------------------------------------------------------------
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        stage = self.stage_of(ctx)
        if stage == STAGES[2]:
            return self._finetune_step(batch)
        return self._distillation_step(batch, local=stage == STAGES[1])

    def on_step_end(self, ctx: StepContext) -> None:
        """Enqueue this step's teacher keys, gathered over the ranks, after the loss has used the old queue."""
        pending, self._pending = self._pending, {}
        if "global" in pending:
            self.global_queue.enqueue(gather_from_ranks(pending["global"]))
        if "local" in pending:
            self.local_queue.enqueue(gather_from_ranks(pending["local"]))

    def _student_view(self, image: Tensor) -> Tensor:
        o = self.options
        jittered = random_brightness_contrast(image, o.view_jitter, o.view_jitter_p)
        return random_gaussian_blur(jittered, o.view_blur_p, o.blur_sigma)

    def _window_embeddings(self, logits: Tensor, teacher: bool) -> Tensor:
        """(B, W, C·pool²) one embedding per window of the logit map (student: through its predictor)."""
        o = self.options
        crops, count = window_crops(logits, o.local_window)
        if teacher:
            emb = self.teachers["local_projector"](crops)
        else:
            emb = self.net("local_predictor")(self.net("local_projector")(crops))
        return emb.reshape(logits.shape[0], count, -1).float()

    def _supervised(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        if logits.shape[0] == 0:
            zero = logits.float().sum() * 0.0
            return zero, zero
        return dice_ce_loss(logits, label)

    def _distillation_step(self, batch: Batch, local: bool) -> StepOutput:
        """Stages i (``local=False``) and ii: the global (and local) soft distillation (+ supervised in ii)."""
        o = self.options
        image = batch["image"]
        out = self.net("student")(self._student_view(image), return_features=True)
        z_s = self.net("global_predictor")(self.net("global_projector")(out.features[0])).float()
        with torch.no_grad():
            t_out = self.teachers["teacher"](image, return_features=True)
            z_t = self.teachers["global_projector"](t_out.features[0]).float()
        losses = {"global": soft_distillation_kl(z_s, z_t, self.global_queue.anchors, o.student_temperature,
                                                 o.teacher_temperature)}
        weights = {"global": o.global_weight}
        pending = {"global": F.normalize(z_t, dim=-1)}
        if local:
            w_s = self._window_embeddings(out.logits, teacher=False)
            with torch.no_grad():
                w_t = self._window_embeddings(t_out.logits, teacher=True)
            self.local_queue.ensure_shape(w_t.shape[1:])
            losses["local"] = soft_distillation_kl(w_s, w_t, self.local_queue.anchors, o.student_temperature,
                                                   o.teacher_temperature)
            weights["local"] = o.local_weight
            pending["local"] = F.normalize(w_t, dim=-1)
            has_mask = batch["has_mask"]
            losses["ce"], losses["dice"] = self._supervised(out.logits[has_mask], batch["label"][has_mask])
            weights.update(ce=o.ce_weight, dice=o.dice_weight)
        self._pending = pending
        return StepOutput(losses, weights)

    def _pseudo_labelled_mix(self, unlabelled: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher labels of the unlabelled images, CutMix-ed with the images, then the images jittered.

        Returns the augmented images (n, 1, H, W), pseudo-labels (n, H, W) and confidences (n, H, W).
        """
        o = self.options
        n, _, h, w = unlabelled.shape
        with torch.no_grad():
            prob = torch.softmax(self.teachers["teacher"](unlabelled).float(), dim=1)
            confidence, pseudo = prob.max(dim=1)
        box = cutmix_masks(n, h, w, o.cutmix_area, device=unlabelled.device)
        partner = (torch.arange(n, device=unlabelled.device) + 1) % n
        mixed = mix(unlabelled, box, partner)
        pseudo, confidence = mix(pseudo, box, partner), mix(confidence, box, partner)
        mixed = random_gaussian_blur(random_brightness_contrast(mixed, o.mix_jitter, o.mix_jitter_p), o.mix_blur_p,
                                     o.blur_sigma)
        return mixed, pseudo, confidence

    def _finetune_step(self, batch: Batch) -> StepOutput:
        """Stage iii: supervised + confidence-weighted pseudo-label CE + k · AnCo."""
        o = self.options
        image, has_mask = batch["image"], batch["has_mask"]
        label_l = batch["label"][has_mask]
        n_l = int(has_mask.sum())
        unlabelled = image[~has_mask]
        if len(unlabelled):
            mixed, pseudo, confidence = self._pseudo_labelled_mix(unlabelled)
        else:
            mixed = unlabelled
            pseudo = torch.empty(0, *image.shape[-2:], dtype=torch.int64, device=image.device)
            confidence = torch.empty(0, *image.shape[-2:], device=image.device)
        inputs = torch.cat([image[has_mask], mixed.to(image.dtype)]).contiguous(
            memory_format=torch.channels_last if image.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = self.net("student")(inputs, return_features=o.anco)
        logits = out.logits if o.anco else out
        ce, dice = self._supervised(logits[:n_l], label_l)
        if len(unlabelled):
            unsup = confidence_weighted_cross_entropy(logits[n_l:], pseudo, confidence, o.strong_threshold)
        else:
            unsup = logits.float().sum() * 0.0
        losses = {"ce": ce, "dice": dice, "unsup": unsup}
        weights = {"ce": o.ce_weight, "dice": o.dice_weight, "unsup": o.unsup_weight}
        metrics: dict[str, float] = {}
        if len(unlabelled):
            every = torch.ones_like(pseudo, dtype=torch.bool)
            metrics["confident_fraction"] = float(confident_fraction(confidence, every, o.strong_threshold).mean())
        if o.anco:
            rep = self.net("representation")(out.features)
            target = torch.cat([label_l, pseudo])
            valid = torch.cat([label_l >= 0, confidence >= o.weak_threshold])
            prob = torch.softmax(logits.detach().float(), dim=1)
            if rep.shape[-2:] != target.shape[-2:]:  # representation_stride > 1: nearest, as ReCo
                size = tuple(rep.shape[-2:])
                target = F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()
                valid = F.interpolate(valid[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5
                prob = F.interpolate(prob, size=size, mode="nearest")
            losses["anco"] = anatomical_contrast_loss(
                rep, target, valid, prob, strong_threshold=o.strong_threshold, temperature=o.anco_temperature,
                num_queries=o.num_queries, num_negatives=o.num_negatives,
            )
            weights["anco"] = o.anco_weight
        return StepOutput(losses, weights, metrics)
