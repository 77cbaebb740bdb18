"""``pce``: partial cross-entropy on the pixels whose candidate set is a singleton.

Clicks, scribbles and full masks all make some pixels' label certain; pCE trains on
exactly those and ignores the rest (WSL4MIS ``CrossEntropyLoss(ignore_index=4)``).
It is the baseline of every point- and scribble-supervised table, PSCV's included.
"""

from __future__ import annotations

from typing import Any

from frugalseg.losses.partial_ce import partial_cross_entropy
from frugalseg.methods.registry import register_method
from frugalseg.training import Batch, Method, MethodOptions, NetFactory, StepContext, StepOutput


class PCEOptions(MethodOptions):
    """No options: pCE has no hyper-parameter of its own."""


@register_method("pce")
class PartialCE(Method[PCEOptions]):
    """Partial cross-entropy on labelled items (points, scribbles, masks)."""

    Options = PCEOptions

    def __init__(self, options: PCEOptions, build_net: NetFactory, num_classes: int) -> None:
        super().__init__(options, build_net, num_classes)
        self.nets["student"] = build_net()

    @classmethod
    def requirements(cls, options: PCEOptions) -> dict[str, Any]:
        return {"sample": "labelled"}

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        logits = self.net("student")(batch["image"])
        return StepOutput({"pce": partial_cross_entropy(logits, batch["candidates"])})
