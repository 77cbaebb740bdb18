from __future__ import annotations

import math

import pytest
import torch

from frugalseg.losses.distillation import anchor_logits, soft_distillation_kl


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [x / sum(e) for x in e]


def _kl_row(student, teacher, anchors, ts, tt):
    """KL(p_t || p_s) of one row, in plain Python."""
    ps = _softmax([_cos(student, a) / ts for a in anchors])
    pt = _softmax([_cos(teacher, a) / tt for a in anchors])
    return sum(t * (math.log(t) - math.log(s)) for t, s in zip(pt, ps))


def test_two_anchors_by_hand():
    # Anchors e1, e2. Row 1: student along e1 (logits [1, 0] at τ_s = 1), teacher along e2 (logits [0, 2] at
    # τ_t = 0.5). Row 2: both along e1 + e2, equally similar to both anchors: two uniform distributions, KL 0.
    e = math.e
    p_s = [e / (e + 1), 1 / (e + 1)]
    p_t = [1 / (1 + e**2), e**2 / (1 + e**2)]
    kl1 = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    student = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 3.0], [5.0, 5.0]])
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = soft_distillation_kl(student, teacher, anchors, student_temperature=1.0, teacher_temperature=0.5)
    assert loss.item() == pytest.approx((kl1 + 0.0) / 2, rel=1e-6)  # batchmean: the sum over rows / rows


def test_rows_with_positions_meet_their_own_anchors():
    # (B, P, D) rows against (K, P, D) anchors: row (b, p) uses anchors[:, p] only.
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    anchors = torch.randn(5, 3, 4, generator=g)
    loss = soft_distillation_kl(student, teacher, anchors, 0.1, 0.01)
    expected = sum(
        _kl_row(student[b, p].tolist(), teacher[b, p].tolist(), anchors[:, p].tolist(), 0.1, 0.01)
        for b in range(2) for p in range(3)
    ) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_global_rows_by_reference():
    g = torch.Generator().manual_seed(1)
    student, teacher, anchors = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(7, 6,
                                                                                                          generator=g)
    loss = soft_distillation_kl(student, teacher, anchors, 0.1, 0.01)
    expected = sum(_kl_row(student[b].tolist(), teacher[b].tolist(), anchors.tolist(), 0.1, 0.01) for b in range(4))
    assert loss.item() == pytest.approx(expected / 4, rel=1e-4)


def test_zero_when_student_matches_teacher_and_gradient_only_to_student():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 5, generator=g)
    anchors = torch.randn(4, 5, generator=g)
    same = soft_distillation_kl(z, z * 2.0, anchors, 0.3, 0.3)  # scale does not change a cosine
    assert same.item() == pytest.approx(0.0, abs=1e-6)

    student = torch.randn(3, 5, generator=g, requires_grad=True)
    teacher = torch.randn(3, 5, generator=g, requires_grad=True)
    bank = anchors.clone().requires_grad_(True)
    soft_distillation_kl(student, teacher, bank, 0.1, 0.01).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None and bank.grad is None  # stop-gradient target and anchors


def test_logits_are_cosines_over_temperature_and_shapes_are_checked():
    q = torch.tensor([[3.0, 4.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(anchor_logits(q, a, 0.5), torch.tensor([[0.6 / 0.5, 0.8 / 0.5]]))
    with pytest.raises(ValueError, match="do not fit"):
        anchor_logits(torch.zeros(2, 3, 4), torch.zeros(5, 4), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        anchor_logits(q, a, 0.0)
    with pytest.raises(ValueError, match="differ"):
        soft_distillation_kl(torch.zeros(2, 2), torch.zeros(3, 2), a, 0.1, 0.1)
