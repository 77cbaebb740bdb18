from __future__ import annotations

import math

import pytest

from frugalseg.training.schedules import ema_decay, linear_rampup, poly_lr_factor, sigmoid_rampup


def test_poly_matches_formula():
    assert poly_lr_factor(0, 100) == 1.0
    assert poly_lr_factor(50, 100) == pytest.approx(0.5**0.9)
    assert poly_lr_factor(100, 100) == 0.0
    assert poly_lr_factor(150, 100) == 0.0


def test_warmup_is_linear_then_poly():
    assert poly_lr_factor(0, 100, warmup_iterations=10) == pytest.approx(0.1)
    assert poly_lr_factor(9, 100, warmup_iterations=10) == pytest.approx(1.0)
    assert poly_lr_factor(10, 100, warmup_iterations=10) == pytest.approx(0.9**0.9)


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0
    assert linear_rampup(25, 100) == 0.25


def test_ema_decay_follows_ssl4mis():
    assert ema_decay(0, 0.99) == 0.0
    assert ema_decay(1, 0.99) == 0.5
    assert ema_decay(1000, 0.99) == 0.99
