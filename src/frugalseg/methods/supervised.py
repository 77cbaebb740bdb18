"""``supervised``: 0.5 · (CE + Dice) on the items that have a full mask.

With every mask given it is the upper bound of every table; with k masked patients it is
the "labelled data only" baseline the semi-supervised papers compare against
(SSL4MIS ``train_fully_supervised_2D.py``).
"""

from __future__ import annotations

from typing import Any

from frugalseg.losses.dice import dice_ce_loss
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput


class SupervisedOptions(MethodOptions):
    """Weights of the two terms (SSL4MIS: 0.5 each)."""

    ce_weight: float = 0.5
    dice_weight: float = 0.5


@register_method("supervised")
class Supervised(Method[SupervisedOptions]):
    """Fully supervised training on mask items only (the engine samples nothing else)."""

    Options = SupervisedOptions

    def __init__(self, options: SupervisedOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        self.nets["student"] = build_net()

    @classmethod
    def requirements(cls, options: SupervisedOptions) -> dict[str, Any]:
        return {"sample": "masks"}

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        opts = self.options
        logits = self.net("student")(batch["image"])
        ce, dice = dice_ce_loss(logits, batch["label"])
        return StepOutput({"ce": ce, "dice": dice}, {"ce": opts.ce_weight, "dice": opts.dice_weight})
