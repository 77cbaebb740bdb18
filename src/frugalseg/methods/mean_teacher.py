"""``mean_teacher``: supervised loss on mask items plus a ramped consistency to an EMA teacher.

Follows SSL4MIS ``train_mean_teacher_2D.py`` (Tarvainen & Valpola 2017): each batch holds
mask items and other items (two-stream sampling); the student gets 0.5·(CE + Dice) on the
mask items and ``w(t) · mean (softmax(s) − softmax(t))²`` against the EMA teacher, which
sees the same images with small Gaussian noise; ``w(t) = w_max · exp(−5 (1 − t/L)²)``.
"""

from __future__ import annotations

from typing import Any

import torch

from frugalseg.losses.consistency import softmax_mse
from frugalseg.losses.dice import dice_ce_loss
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput
from frugalseg.training.ema import make_teacher
from frugalseg.training.schedules import sigmoid_rampup


class MeanTeacherOptions(MethodOptions):
    """Defaults are SSL4MIS's (``--consistency 0.1``, ramp over the whole run, EMA 0.99, noise 0.1 clipped at 0.2)."""

    consistency: float = 0.1
    rampup_fraction: float = 1.0
    noise_std: float = 0.1
    noise_clip: float = 0.2
    ema_decay: float = 0.99
    consistency_on: str = "all"


@register_method("mean_teacher")
class MeanTeacher(Method[MeanTeacherOptions]):
    """Student + EMA teacher; the teacher is what gets evaluated (it is the smoother model)."""

    Options = MeanTeacherOptions

    def __init__(self, options: MeanTeacherOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        if options.consistency_on not in ("all", "unlabelled"):
            raise ValueError(f"consistency_on must be 'all' or 'unlabelled', got {options.consistency_on!r}")
        self.nets["student"] = build_net()
        self.teachers["teacher"] = make_teacher(self.nets["student"])
        self.ema_decay = options.ema_decay

    @classmethod
    def requirements(cls, options: MeanTeacherOptions) -> dict[str, Any]:
        return {"sample": "all", "two_stream": True}

    @property
    def ema_pairs(self) -> list[tuple[str, str]]:
        return [("teacher", "student")]

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        opts = self.options
        image = batch["image"]
        logits = self.net("student")(image)
        has_mask = batch["has_mask"]
        if has_mask.any():
            ce, dice = dice_ce_loss(logits[has_mask], batch["label"][has_mask])
        else:
            ce = dice = logits.sum() * 0.0
        with torch.no_grad():
            noise = torch.clamp(torch.randn_like(image) * opts.noise_std, -opts.noise_clip, opts.noise_clip)
            teacher_logits = self.teachers["teacher"](image + noise)
        if opts.consistency_on == "all":
            consistency = softmax_mse(logits, teacher_logits)
        elif (~has_mask).any():
            consistency = softmax_mse(logits[~has_mask], teacher_logits[~has_mask])
        else:
            consistency = logits.sum() * 0.0
        weight = opts.consistency * sigmoid_rampup(ctx.iteration, opts.rampup_fraction * ctx.max_iterations)
        return StepOutput(
            {"ce": ce, "dice": dice, "consistency": consistency},
            {"ce": 0.5, "dice": 0.5, "consistency": weight},
        )

    def inference_network(self) -> torch.nn.Module:
        return self.teachers["teacher"]
