"""Exponential moving average of a student network into its teacher (mean teacher, Tarvainen & Valpola 2017)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``θ_t ← decay · θ_t + (1 − decay) · θ_s`` for every parameter and floating buffer.

    Floating buffers (batch-norm running statistics) are averaged too, so the teacher's
    normalisation follows the student's; integer buffers (``num_batches_tracked``) are copied.
    Under DDP every rank holds the same student after the all-reduced step, so every rank
    computes the same teacher without communication.
    """
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        if t.dtype.is_floating_point:
            t.lerp_(s.detach(), 1.0 - decay)
        else:
            t.copy_(s)


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` to be updated by :func:`update_ema` (never by the optimiser)."""
    import copy

    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
