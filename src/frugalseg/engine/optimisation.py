"""The optimiser, its learning-rate schedule, mixed precision and what changes at a stage's start."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from frugalseg.config import LRSchedule, OptimConfig, Precision
from frugalseg.training import Method, StagePlan, StepContext

__all__ = ["Optimisation", "autocast_dtype", "build_optimisation", "start_stage"]


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: full fp32)."""
    if precision == Precision.OFF:
        return None
    if precision == Precision.FP16:
        return torch.float16
    if precision == Precision.BF16:
        return torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@dataclass
class Optimisation:
    """What steps the weights: the parameters, the optimiser, the poly or cosine schedule and the fp16 grad scaler."""

    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler


def build_optimisation(params: Iterable[nn.Parameter], optim: OptimConfig, stages: StagePlan,
                       amp_dtype: torch.dtype | None, device: torch.device) -> Optimisation:
    """SGD or AdamW over ``params``, the poly or cosine learning rate (after the warm-up) restarted at every stage,
    a scaler for fp16 on CUDA."""
    params = list(params)
    if optim.name == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    cosine = optim.lr_schedule == LRSchedule.COSINE
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: stages.lr_factor(it, optim.poly_power, optim.warmup_iterations, cosine)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16 and device.type == "cuda")
    return Optimisation(params, optimizer, scheduler, scaler)


def start_stage(method: Method[Any], optimizer: torch.optim.Optimizer, stages: StagePlan, index: int,
                ctx: StepContext) -> None:
    """What changes at a stage's first iteration: optimiser state and group values, then the method's hook."""
    stage = stages.stages[index]
    if index > 0 and stage.reset_optimizer:
        optimizer.state.clear()
    for key, value in stage.optimizer.items():
        for group in optimizer.param_groups:
            if key not in group:
                raise ValueError(f"stage {stage.name!r} sets optimiser option {key!r}, which "
                                 f"{type(optimizer).__name__} does not have")
            group[key] = value
    method.on_stage_start(stage, ctx)
