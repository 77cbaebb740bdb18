"""What a method is: it owns its networks and turns a batch into named losses; it never owns a loop.

The engine (``frugalseg.engine``) calls :meth:`Method.training_step` once per
iteration, sums the returned losses with their weights, steps the optimiser
over :meth:`Method.trainable_parameters`, updates every EMA teacher the method
declares in :attr:`Method.ema_pairs`, and checkpoints the method's whole
``state_dict`` (networks, teachers and any registered buffers such as memory
banks or per-instance weights). A new method is one file: subclass
``Method[ItsOptions]``, set ``Options = ItsOptions``, decorate it with
the registry's ``register_method``.

A method whose paper trains in several phases (ACTION: pre-training, then
fine-tuning) lists them in :meth:`Method.stages`: consecutive ranges of the
run's iterations, each with its own poly learning-rate cycle, fresh optimiser
state, batch size and end-of-stage checkpoint. The loop stays the engine's;
the method only says where the stages are and what changes at their start
(:meth:`Method.on_stage_start`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from frugalseg.training.stages import Stage, StepContext

Batch = Mapping[str, Tensor]
"""A collated batch from :class:`frugalseg.data.dataset.SliceDataset` (``image``, ``candidates``, ``label``, ...)."""


class MethodOptions(BaseModel):
    """Base of every method's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StepOutput:
    """Named loss terms and their weights; the engine minimises ``sum(weights.get(k, 1) * losses[k])``.

    Weights are plain floats (ramp-ups, λ) so that the logs show raw loss values and
    weights apart. ``metrics`` are extra scalars to log (not optimised).
    """

    losses: dict[str, Tensor]
    weights: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def total(self) -> Tensor:
        terms = [self.weights.get(k, 1.0) * v for k, v in self.losses.items()]
        if not terms:
            raise ValueError("a training step returned no loss")
        return torch.stack([t.float() for t in terms]).sum()


NetFactory = Callable[[], nn.Module]
"""Builds one fresh network of the run's architecture (its input channels are the data's)."""

OptionsT = TypeVar("OptionsT", bound=MethodOptions)


class Method(nn.Module, Generic[OptionsT]):
    """Base class of every training method.

    Subclasses put trainable networks in ``self.nets`` and EMA teachers in
    ``self.teachers``, and list teacher/student pairs in :attr:`ema_pairs`.
    The engine may replace a trainable network's *call path* by a
    DistributedDataParallel wrapper (see :meth:`wrap_networks`); methods call their
    networks through :meth:`net` so that the wrapped version is used when present.

    Args:
        options: the method's validated ``Options``.
        build_net: builds one fresh network of the run's architecture.
        num_classes: number of classes including background.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    ema_decay: float = 0.99
    ddp_find_unused_parameters: ClassVar[bool] = False
    """Under DDP, let the wrappers tolerate parameters without a gradient in a step (heads of another
    stage, a frozen decoder): DistributedDataParallel's ``find_unused_parameters``, which costs a graph
    traversal per step, so only methods that need it turn it on."""

    options: OptionsT

    def __init__(self, options: OptionsT, build_net: NetFactory, num_classes: int) -> None:
        super().__init__()
        self.options = options
        self.num_classes = num_classes
        self.nets = nn.ModuleDict()
        self.teachers = nn.ModuleDict()
        self._wrapped: dict[str, nn.Module] = {}

    # ----- networks -------------------------------------------------------------------------------------------
    def net(self, name: str) -> nn.Module:
        """The trainable network ``name`` as it must be called (DDP-wrapped under torchrun)."""
        return self._wrapped.get(name) or self.nets[name]

    def wrap_networks(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Let the engine wrap every trainable network (e.g. in DDP); the parameters stay in ``self.nets``."""
        self._wrapped = {k: wrap(v) for k, v in self.nets.items()}

    @property
    def ema_pairs(self) -> list[tuple[str, str]]:
        """(teacher name, student name) pairs the engine updates by EMA after every optimiser step."""
        return []

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser steps (default: every trainable network's)."""
        for net in self.nets.values():
            yield from (p for p in net.parameters() if p.requires_grad)

    def inference_network(self) -> nn.Module:
        """The network whose predictions are evaluated (default: ``student``).

        Subclasses that evaluate a teacher (mean teacher; MLDS by default) or pick among two peers
        (co-training) override this.
        """
        return self.nets["student"]

    # ----- training -------------------------------------------------------------------------------------------
    @abstractmethod
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        """Turn one batch into named losses (computed in fp32 from the logits)."""

    def on_step_end(self, ctx: StepContext) -> None:  # noqa: B027 (optional hook)
        """Called after the optimiser step and the EMA update (method state updates go here)."""

    def stages(self, iterations: int) -> list[Stage]:
        """The run's stages in order; their lengths must add up to ``iterations`` (default: one stage)."""
        return [Stage("train", iterations)]

    def on_stage_start(self, stage: Stage, ctx: StepContext) -> None:  # noqa: B027 (optional hook)
        """Called before the first iteration of each stage (also after a resume that lands on a stage's start).

        Stage switches that change the method's state (e.g. re-initialising a teacher) go here, so that a
        run resumed at the boundary does the same as one that was never interrupted.
        """

    @classmethod
    def requirements(cls, options: OptionsT) -> dict[str, Any]:
        """What the method needs from the data (e.g. ``{"masks": True}``); checked before training."""
        return {}

