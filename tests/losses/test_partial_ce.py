from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from frugalseg.losses.partial_ce import PartialCrossEntropyLoss, labelled_targets, partial_cross_entropy


def _candidates(rows):
    """(B, C, 1, W) bool map from per-pixel candidate sets: rows[b][w] is the set of classes of pixel w."""
    b, w = len(rows), len(rows[0])
    c = 2
    out = torch.zeros(b, c, 1, w, dtype=torch.bool)
    for i, row in enumerate(rows):
        for j, classes in enumerate(row):
            for k in classes:
                out[i, k, 0, j] = True
    return out


def test_partial_ce_by_hand():
    # Image 0, four pixels: {0} labelled, {0,1} ambiguous (ignored), {1} labelled, {} empty (ignored).
    # Image 1: nothing labelled (it must not dilute the mean: the mean is over labelled pixels).
    candidates = _candidates([[{0}, {0, 1}, {1}, set()], [{0, 1}, {0, 1}, {0, 1}, {0, 1}]])
    logits = torch.zeros(2, 2, 1, 4)
    logits[0, 0, 0, 2] = math.log(3.0)  # pixel 2: softmax = (3/4, 1/4), label 1 -> -log(1/4) = log 4
    logits[0, 1, 0, 1] = 50.0  # the ignored pixel is confidently wrong: it must not count
    # pixel 0: logits (0, 0), softmax (1/2, 1/2), label 0 -> -log(1/2) = log 2
    expected = (math.log(2.0) + math.log(4.0)) / 2  # = 1.5 log 2
    assert partial_cross_entropy(logits, candidates).item() == pytest.approx(expected, rel=1e-6)


def test_labelled_targets_reads_singletons_only():
    target, labelled = labelled_targets(_candidates([[{1}, {0, 1}, set(), {0}]]))
    assert labelled.tolist() == [[[True, False, False, True]]]
    assert target[labelled].tolist() == [1, 0]


def test_no_labelled_pixel_gives_zero_with_a_gradient_path_not_nan():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    candidates = torch.ones(2, 3, 4, 4, dtype=torch.bool)  # every pixel ambiguous
    loss = partial_cross_entropy(logits, candidates)
    loss.backward()
    assert loss.item() == 0.0
    assert loss.requires_grad
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_full_mask_equals_plain_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    label = torch.randint(0, 4, (2, 5, 6), generator=g)
    candidates = F.one_hot(label, 4).permute(0, 3, 1, 2).bool()
    assert partial_cross_entropy(logits, candidates).item() == pytest.approx(F.cross_entropy(logits, label).item())


def test_gradient_only_on_labelled_pixels_and_3d_input():
    logits = torch.randn(1, 2, 2, 3, 3, requires_grad=True)  # (B, C, D, H, W)
    candidates = torch.ones(1, 2, 2, 3, 3, dtype=torch.bool)
    candidates[0, 1, 1, 2, 2] = False  # one labelled voxel: class 0
    partial_cross_entropy(logits, candidates).backward()
    nonzero = logits.grad.abs().sum(dim=1) > 0
    assert nonzero.sum() == 1 and nonzero[0, 1, 2, 2]


def test_bf16_autocast_matches_fp32():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    candidates = F.one_hot(torch.randint(0, 3, (2, 8, 8), generator=g), 3).permute(0, 3, 1, 2).bool()
    ref = partial_cross_entropy(logits, candidates)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = partial_cross_entropy(logits, candidates)
    assert out.dtype == torch.float32 and out.item() == pytest.approx(ref.item(), rel=1e-6)
    out_bf16 = partial_cross_entropy(logits.bfloat16(), candidates)
    assert torch.isfinite(out_bf16) and out_bf16.dtype == torch.float32


def test_bad_inputs_raise():
    logits = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        partial_cross_entropy(logits, torch.ones(1, 3, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        partial_cross_entropy(logits, torch.ones(1, 2, 3, 3))


def test_module_wrapper():
    logits = torch.randn(1, 2, 2, 2)
    candidates = torch.tensor([[[[True, False], [True, True]], [[False, True], [True, False]]]])
    assert PartialCrossEntropyLoss()(logits, candidates).item() == partial_cross_entropy(logits, candidates).item()
