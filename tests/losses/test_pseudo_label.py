from __future__ import annotations

import math

import pytest
import torch

from frugalseg.losses.pseudo_label import confidence_weighted_cross_entropy, confident_fraction


def test_weighted_cross_entropy_by_hand():
    # Two 2x2 images, 2 classes, θ = 0.97.
    # Image 0: confidences 0.99, 0.5, 0.98, 0.97 -> 3 of 4 confident (≥ θ), w0 = 3/4.
    # Image 1: one pixel ignored (-1); of the other 3, one confident -> w1 = 1/3.
    # Logits 0 everywhere (CE = log 2) except image 0 pixel (0, 0): logits (2, 0) with label 0 -> log(1 + e^-2).
    logits = torch.zeros(2, 2, 2, 2)
    logits[0, 0, 0, 0] = 2.0
    labels = torch.tensor([[[0, 1], [1, 0]], [[1, -1], [0, 0]]])
    conf = torch.tensor([[[0.99, 0.5], [0.98, 0.97]], [[0.99, 0.99], [0.5, 0.6]]])
    # image 1: pixel (0, 1) is ignored although confident, so 1 confident of 3 valid pixels
    ce00 = math.log(1 + math.exp(-2))
    l2 = math.log(2)
    expected = (0.75 * (ce00 + 3 * l2) + (1 / 3) * 3 * l2) / 7  # mean over the 7 pseudo-labelled pixels
    loss = confidence_weighted_cross_entropy(logits, labels, conf, threshold=0.97)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(confident_fraction(conf, labels >= 0, 0.97), torch.tensor([0.75, 1 / 3]))


def test_an_unsure_image_contributes_nothing_and_no_label_gives_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 4))
    conf = torch.full((2, 4, 4), 0.5)
    conf[0] = 1.0
    loss = confidence_weighted_cross_entropy(logits, labels, conf, 0.97)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0

    empty = confidence_weighted_cross_entropy(logits, torch.full((2, 4, 4), -1), conf, 0.97)
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="threshold"):
        confidence_weighted_cross_entropy(logits, labels, conf, 1.5)
