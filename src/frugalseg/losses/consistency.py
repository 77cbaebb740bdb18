"""Consistency between a student's and a teacher's predictions (mean teacher)."""

from __future__ import annotations

import torch
from torch import Tensor


def softmax_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean squared difference of the two softmax maps, over every pixel and class.

    This is SSL4MIS's ``softmax_mse_loss`` reduced by the mean (``train_mean_teacher_2D.py``):
    ``mean_{b,c,h,w} (softmax(s)_{bchw} − softmax(t)_{bchw})²``. The teacher side is detached.

    Args:
        student_logits: (B, C, H, W).
        teacher_logits: (B, C, H, W), no gradient needed.
    """
    s = torch.softmax(student_logits.float(), dim=1)
    t = torch.softmax(teacher_logits.detach().float(), dim=1)
    return torch.mean((s - t) ** 2)
