from __future__ import annotations

import math

import pytest
import torch

from frugalseg.losses.consistency import softmax_mse
from frugalseg.losses.dice import dice_ce_loss, masked_dice_loss


def _by_hand_dice(probs, onehot, eps=1e-5):
    # SSL4MIS DiceLoss: per class over the whole batch, 1 - (2ΣI+ε)/(Σp²+Σy²+ε), mean over classes.
    losses = []
    for c in range(probs.shape[1]):
        p, y = probs[:, c].flatten().tolist(), onehot[:, c].flatten().tolist()
        inter = sum(a * b for a, b in zip(p, y))
        losses.append(1 - (2 * inter + eps) / (sum(a * a for a in p) + sum(b * b for b in y) + eps))
    return sum(losses) / len(losses)


def test_dice_against_hand_value_with_ignored_pixel():
    logits = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [3.0, 0.0]]]])  # (1, 2, 2, 2)
    label = torch.tensor([[[0, 1], [1, -1]]])
    probs = torch.softmax(logits, 1)
    valid = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    onehot = torch.stack([(label == 0).float(), (label == 1).float()], 1)
    expected = _by_hand_dice(probs * valid, onehot * valid)
    assert masked_dice_loss(logits, label).item() == pytest.approx(expected, rel=1e-5)


def test_dice_ce_perfect_prediction_is_near_zero_and_ce_by_hand():
    label = torch.tensor([[[0, 1], [1, 0]]])
    logits = torch.nn.functional.one_hot(label, 2).permute(0, 3, 1, 2).float() * 50
    ce, dice = dice_ce_loss(logits, label)
    assert ce.item() < 1e-6 and dice.item() < 1e-6
    logits = torch.zeros(1, 2, 2, 2)
    ce, _ = dice_ce_loss(logits, label)
    assert ce.item() == pytest.approx(math.log(2))


def test_dice_ce_with_no_labelled_pixel_is_finite_with_gradient():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    ce, dice = dice_ce_loss(logits, torch.full((1, 4, 4), -1))
    (ce + dice).backward()
    assert torch.isfinite(ce) and torch.isfinite(dice) and logits.grad is not None


def test_softmax_mse_by_hand():
    s = torch.tensor([[[[0.0]], [[0.0]]]])  # softmax (0.5, 0.5)
    t = torch.tensor([[[[math.log(3.0)]], [[0.0]]]])  # softmax (0.75, 0.25)
    assert softmax_mse(s, t).item() == pytest.approx((0.25**2 + 0.25**2) / 2)
