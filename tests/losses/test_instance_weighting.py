from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.losses.instance_weighting import (
    IndicatorOptimizer,
    IndicatorState,
    cross_entropy_error,
    indicator_step,
    influence,
    segment_classifier_gradients,
    weighted_cross_entropy,
)


def _fresh(k: int) -> IndicatorState:
    return IndicatorState(torch.zeros(k), torch.zeros(k), torch.zeros(k, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------------------------
# The γ update by hand: two weak instances, one aligned with the strong gradient, one opposed.
#
#   g_S = (1, 2)          g_1 = (3, 1)   g_S·g_1 = 5  → ∂L_S/∂γ_1 = −5   (aligned: γ_1 must grow)
#                         g_2 = (−2, 0)  g_S·g_2 = −2 → ∂L_S/∂γ_2 = +2   (opposed: γ_2 must shrink)
#
# SGD (Algorithm 1), β = 0.05, γ = (0.5, 0.5):  γ ← γ − β ∂L_S/∂γ = (0.5 + 0.25, 0.5 − 0.1) = (0.75, 0.4)
# Adam, first step, lr = 0.1: m̂ = g, v̂ = g², step = lr · g / (|g| + ε) = ±0.1 → (0.6, 0.4)
# ---------------------------------------------------------------------------------------------------------------

G_S = torch.tensor([1.0, 2.0])
G_K = torch.tensor([[3.0, 1.0], [-2.0, 0.0]])


def test_influence_by_hand():
    assert influence(G_S, G_K).tolist() == [-5.0, 2.0]


def test_sgd_step_by_hand():
    gamma, _ = indicator_step(torch.tensor([0.5, 0.5]), influence(G_S, G_K), _fresh(2), lr=0.05, optimizer="sgd")
    assert gamma.tolist() == pytest.approx([0.75, 0.4])


def test_adam_first_step_by_hand():
    state = _fresh(2)
    gamma, new = indicator_step(torch.tensor([0.5, 0.5]), influence(G_S, G_K), state, lr=0.1, optimizer="adam")
    assert gamma.tolist() == pytest.approx([0.6, 0.4], abs=1e-6)
    assert new.steps.tolist() == [1, 1]
    assert new.exp_avg.tolist() == pytest.approx([-0.5, 0.2])  # (1 − 0.9) · grad
    assert new.exp_avg_sq.tolist() == pytest.approx([0.025, 0.004])  # (1 − 0.999) · grad²
    assert state.steps.tolist() == [0, 0]  # the input state is not modified


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gamma_is_clipped_to_the_unit_interval(optimizer):
    gamma, _ = indicator_step(torch.tensor([0.98, 0.03]), torch.tensor([-100.0, 100.0]), _fresh(2), lr=0.5,
                              optimizer=optimizer)
    assert gamma.tolist() == [1.0, 0.0]
    inside, _ = indicator_step(torch.tensor([0.5]), torch.tensor([-1.0]), _fresh(1), lr=0.1, optimizer=optimizer)
    assert 0.5 < inside.item() < 1.0


def test_adam_matches_torch_adam_per_instance():
    """Repeated steps on one instance are torch's Adam (with the same clipping-free trajectory)."""
    grads = [0.3, -0.1, 0.7, 0.2, -0.4]
    p = nn.Parameter(torch.tensor([0.5]))
    opt = torch.optim.Adam([p], lr=0.01)
    gamma, state = torch.tensor([0.5]), _fresh(1)
    for g in grads:
        p.grad = torch.tensor([g])
        opt.step()
        gamma, state = indicator_step(gamma, torch.tensor([g]), state, lr=0.01)
    assert gamma.item() == pytest.approx(p.item(), abs=1e-6)  # fp32 rounding order differs


def test_adam_bias_correction_is_per_instance():
    # Instance 0 has had 50 steps, instance 1 none: the same gradient moves them differently, and the fresh
    # one by exactly lr (its bias correction is that of a first step, not of the 51st).
    state = IndicatorState(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([50, 0]))
    gamma, new = indicator_step(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0]), state, lr=0.1)
    assert gamma[1].item() == pytest.approx(0.4, abs=1e-6)
    assert gamma[0].item() != pytest.approx(0.4, abs=1e-3)
    assert new.steps.tolist() == [51, 1]


def test_bad_optimizer_is_rejected():
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adam'"):
        indicator_step(torch.zeros(1), torch.zeros(1), _fresh(1), lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="differ"):
        indicator_step(torch.zeros(2), torch.zeros(1), _fresh(2), lr=0.1)
    assert IndicatorOptimizer("adam") == "adam"


# ---------------------------------------------------------------------------------------------------------------
# Per-instance classifier gradients: exact, against autograd one segment at a time.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 4, kernel_size=3, padding=1),
    nn.Conv2d(3, 4, kernel_size=1, bias=False),
    nn.Conv2d(3, 4, kernel_size=3, padding=2, dilation=2),
])
def test_segment_gradients_equal_autograd(conv):
    torch.manual_seed(0)
    feats = torch.randn(2, 3, 6, 5)
    target = torch.randint(0, 4, (2, 6, 5))
    target[0, 0, :] = -1  # unlabelled pixels carry no error
    segments = torch.full((2, 6, 5), -1)
    segments[0, :3] = 0
    segments[0, 3:, :2] = 2
    segments[1, 2:5, 1:4] = 1
    segments[1, 0, 0] = 0  # a segment spanning two images
    logits = conv(feats)
    sums, counts = segment_classifier_gradients(feats, cross_entropy_error(logits, target), segments, 4, conv)
    for s in range(4):
        member = (segments == s) & (target >= 0)
        assert counts[s].item() == (segments == s).sum().item()
        if not member.any():
            assert sums[s].abs().sum().item() == 0.0
            continue
        ce = F.cross_entropy(conv(feats), target.clamp(min=0), reduction="none")
        grads = torch.autograd.grad(ce[member].sum(), list(conv.parameters()))
        torch.testing.assert_close(sums[s], torch.cat([g.flatten() for g in grads]), rtol=1e-5, atol=1e-6)


def test_cross_entropy_error_is_the_logit_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 3, 3, requires_grad=True)
    target = torch.randint(0, 4, (2, 3, 3))
    target[1, 1, 1] = -1
    ce = F.cross_entropy(logits, target, ignore_index=-1, reduction="sum")
    (expected,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(cross_entropy_error(logits, target), expected)


def test_segment_gradients_reject_what_does_not_fit():
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
    feats, err = torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 4)
    with pytest.raises(ValueError, match="segments must be"):
        segment_classifier_gradients(feats, err, torch.zeros(1, 2, 2, dtype=torch.long), 1, conv)
    with pytest.raises(ValueError, match="not to the error"):
        segment_classifier_gradients(feats, torch.zeros(1, 4, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), 1, conv)
    with pytest.raises(ValueError, match="groups=1"):
        segment_classifier_gradients(feats, err, torch.zeros(1, 4, 4, dtype=torch.long), 1,
                                     nn.Conv2d(2, 4, kernel_size=1, groups=2))


# ---------------------------------------------------------------------------------------------------------------
# The γ-weighted cross-entropy.
# ---------------------------------------------------------------------------------------------------------------


def test_weighted_cross_entropy_by_hand():
    # two pixels with logits (0, 0): CE = log 2 each; a third pixel unlabelled.
    logits = torch.zeros(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, -1]]])
    weight = torch.tensor([[[1.0, 0.25, 7.0]]])
    # (1·log 2 + 0.25·log 2) / 2 labelled pixels: a lower weight lowers the loss, it is not renormalised away
    assert weighted_cross_entropy(logits, target, weight).item() == pytest.approx(1.25 * math.log(2) / 2)
    ones = torch.ones_like(weight)
    assert weighted_cross_entropy(logits, target, ones).item() == pytest.approx(
        F.cross_entropy(logits, target, ignore_index=-1).item())


def test_weighted_cross_entropy_without_labels_is_zero_with_a_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = weighted_cross_entropy(logits, torch.full((1, 2, 2), -1), torch.ones(1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
