r"""Soft contrastive distillation against a bank of anchors (ACTION stages i–ii; ISD, Tejankar et al. 2021).

ACTION (You et al., IPMI 2023) does not contrast a positive pair against hard negatives. It asks the
student to relate a query to a set of anchors the way the teacher does: both embed (two views of) the
same image, each turns its cosine similarities to the anchors into a distribution, and the student
matches the teacher's, which is sharper (τ_t < τ_s)::

    p_t(n) = softmax_n( cos(z_t, a_n) / τ_t )          teacher, no gradient
    p_s(n) = softmax_n( cos(z_s, a_n) / τ_s )          student (after its predictor)
    L      = 1/R Σ_rows KL(p_t ‖ p_s) = 1/R Σ_rows Σ_n p_t(n) (log p_t(n) − log p_s(n))

over the R rows of the batch (``reduction='batchmean'``, as the official code). An anchor similar to the
query gets target mass instead of being pushed away: the negatives are "softly labelled".

Rows may carry positions: with student/teacher embeddings (B, P, D) and anchors (K, P, D), row (b, p) is
compared with the anchors at the same position p only. ACTION's local stage uses it for windows (one
embedding per window, compared with the same window of the queued images); the global stage has no
position (B, D) and (K, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor

__all__ = ["anchor_logits", "soft_distillation_kl"]


def anchor_logits(queries: Tensor, anchors: Tensor, temperature: float) -> Tensor:
    """Cosine similarities of each query to every anchor, divided by ``temperature``.

    Args:
        queries: (B, D) or (B, P, D).
        anchors: (K, D), or (K, P, D) for queries with positions (row (b, p) meets anchors[:, p]).
        temperature: τ > 0.

    Returns:
        (B, K) or (B, P, K) in fp32.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if queries.dim() != anchors.dim() or queries.shape[1:] != anchors.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape)} and anchors {tuple(anchors.shape)} do not fit: "
                         "expected (B, D) with (K, D), or (B, P, D) with (K, P, D)")
    q = F.normalize(queries.float(), dim=-1)
    a = F.normalize(anchors.float(), dim=-1)
    if q.dim() == 2:
        return q @ a.T / temperature
    return torch.einsum("bpd,kpd->bpk", q, a) / temperature


def soft_distillation_kl(
    student: Tensor,
    teacher: Tensor,
    anchors: Tensor,
    student_temperature: float,
    teacher_temperature: float,
) -> Tensor:
    """``KL(p_t ‖ p_s)`` of the two anchor-similarity distributions, averaged over rows (module docstring).

    Args:
        student: (B, D) or (B, P, D) student embeddings (after the predictor); gradients flow here.
        teacher: same shape, the teacher's embeddings; detached (the target is a stop-gradient EMA).
        anchors: (K, D) or (K, P, D), the anchor bank; detached.
        student_temperature: τ_s (ACTION: 0.1).
        teacher_temperature: τ_t (ACTION: 0.01).

    Returns:
        scalar fp32: the sum of the per-row KL divergences divided by the number of rows (B or B·P).
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ")
    anchors = anchors.detach()
    log_p_s = torch.log_softmax(anchor_logits(student, anchors, student_temperature), dim=-1)
    log_p_t = torch.log_softmax(anchor_logits(teacher.detach(), anchors, teacher_temperature), dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
    return kl.sum() / kl.numel()
