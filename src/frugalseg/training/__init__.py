"""The training core: what a method is and the pieces every method and the loop share.

``Method`` and its ``MethodOptions``, the ``Stage`` and ``StepContext`` a step runs in, the ``StepOutput``
it returns, EMA teachers, schedules, collectives across ranks and the checkpoint format. The methods
(the seven, and their registry) build on it and the loop (``frugalseg.engine``) drives it; it imports neither
(docs/architecture.md).
"""

from __future__ import annotations

from frugalseg.training.method import Batch, Method, MethodOptions, NetFactory, StepOutput
from frugalseg.training.stages import Stage, StagePlan, StepContext

__all__ = ["Batch", "Method", "MethodOptions", "NetFactory", "Stage", "StagePlan", "StepContext", "StepOutput"]
