from __future__ import annotations

import math

import pytest
import torch

from frugalseg.data.intensity import (
    brightness_contrast,
    gaussian_blur,
    random_brightness_contrast,
    random_gaussian_blur,
)


def test_brightness_then_contrast_by_hand():
    x = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]]]])
    b, c = torch.tensor([1.5]), torch.tensor([0.5])
    # brightness: (0.3, 0.6, 0.9, 1.2 -> 1.0); mean 0.7; contrast 0.5 around it
    bright = torch.tensor([0.3, 0.6, 0.9, 1.0])
    expected = ((bright - bright.mean()) * 0.5 + bright.mean()).reshape(1, 1, 2, 2)
    torch.testing.assert_close(brightness_contrast(x, b, c, torch.tensor([False])), expected)
    # contrast first: mean 0.5 -> (0.35, 0.45, 0.55, 0.65), then x 1.5
    expected = torch.tensor([0.525, 0.675, 0.825, 0.975]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(brightness_contrast(x, b, c, torch.tensor([True])), expected)


def test_probability_zero_is_the_identity_and_draws_are_seeded():
    x = torch.rand(3, 1, 8, 8)
    for seed in range(20):  # images not drawn are returned bit for bit ((x - m) + m need not be x in floats)
        assert torch.equal(random_brightness_contrast(x * (seed + 1) / 21, 0.25, 0.0), x * (seed + 1) / 21)
    x = torch.rand(8, 1, 8, 8) * 0.5
    half = random_brightness_contrast(x, 0.25, 0.5, torch.Generator().manual_seed(0))
    drawn = torch.rand(8, generator=torch.Generator().manual_seed(0)) < 0.5  # the function's first draw
    assert 0 < int(drawn.sum()) < 8
    assert [not torch.equal(half[i], x[i]) for i in range(8)] == drawn.tolist()
    assert random_gaussian_blur(x, 0.0) is x
    a = random_brightness_contrast(x, 0.25, 1.0, torch.Generator().manual_seed(4))
    b = random_brightness_contrast(x, 0.25, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, x)
    with pytest.raises(ValueError):
        random_brightness_contrast(x, 1.5, 0.5)
    with pytest.raises(ValueError):
        random_gaussian_blur(x, 0.5, (1.0, 0.5))


def test_gaussian_blur_weights_and_edge_cases():
    x = torch.zeros(2, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    out = gaussian_blur(x, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(out[1], x[1])  # sigma 0: unchanged
    w = [math.exp(-0.5 * k * k) for k in range(-3, 4)]
    w = [v / sum(w) for v in w]
    assert out[0, 0, 4, 4].item() == pytest.approx(w[3] * w[3], rel=1e-5)
    assert out[0, 0, 4, 5].item() == pytest.approx(w[3] * w[4], rel=1e-5)
    assert out[0].sum().item() == pytest.approx(1.0, rel=1e-5)
    flat = torch.full((1, 1, 6, 6), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([1.15])), flat)  # reflected borders keep levels
