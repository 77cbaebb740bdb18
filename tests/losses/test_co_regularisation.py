from __future__ import annotations

import math

import pytest
import torch

from frugalseg.losses.co_regularisation import cross_pseudo_supervision, cutmix_masks, mix

# ---------------------------------------------------------------------------------------------------------------
# The co-regularisation term by hand: one image of two pixels, two classes.
#
#   network a: logits (0, 0) at pixel 0, (ln 3, 0) at pixel 1   → p_a = (1/2, 1/2), (3/4, 1/4)
#   network b: logits (0, ln 3) at pixel 0, (0, 0) at pixel 1   → p_b = (1/4, 3/4), (1/2, 1/2)
#   pseudo-labels: ŷ_a = (0 [a tie goes to class 0], 0), ŷ_b = (1, 0)
#
#   CE(a, ŷ_b) = (−ln 1/2, −ln 3/4)      CE(b, ŷ_a) = (−ln 1/4, −ln 1/2)
#   L = mean over the 2 pixels of the sums = (ln 2 + ln 4/3 + ln 4 + ln 2) / 2 = (ln 64/3) / 2
# ---------------------------------------------------------------------------------------------------------------


def _pair():
    ln3 = math.log(3.0)
    a = torch.tensor([[0.0, ln3], [0.0, 0.0]]).reshape(1, 2, 1, 2)  # (B, C, H, W): channel c holds both pixels
    b = torch.tensor([[0.0, 0.0], [ln3, 0.0]]).reshape(1, 2, 1, 2)
    return a, b, a.argmax(dim=1), b.argmax(dim=1)


def test_cross_pseudo_supervision_by_hand():
    a, b, pa, pb = _pair()
    assert pa.tolist() == [[[0, 0]]] and pb.tolist() == [[[1, 0]]]
    assert cross_pseudo_supervision(a, b, pa, pb).item() == pytest.approx(math.log(64 / 3) / 2)


def test_cross_pseudo_supervision_weights():
    a, b, pa, pb = _pair()
    full = cross_pseudo_supervision(a, b, pa, pb).item()
    # per image: the mean scales
    assert cross_pseudo_supervision(a, b, pa, pb, torch.tensor([0.25])).item() == pytest.approx(0.25 * full)
    # per pixel: pixel 1 only (its two terms: ln 4/3 + ln 2), halved by the mean over both pixels
    w = torch.tensor([[[0.0, 1.0]]])
    assert cross_pseudo_supervision(a, b, pa, pb, w).item() == pytest.approx(math.log(8 / 3) / 2)
    # symmetric in the two networks
    assert cross_pseudo_supervision(b, a, pb, pa).item() == pytest.approx(full)


def test_cross_pseudo_supervision_gradient_reaches_both_networks_only_through_their_logits():
    a, b, _, _ = _pair()
    a.requires_grad_(True)
    b.requires_grad_(True)
    pa, pb = a.argmax(dim=1), b.argmax(dim=1)
    cross_pseudo_supervision(a, b, pa, pb).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_mix_by_hand():
    x = torch.arange(8.0).reshape(2, 1, 2, 2)  # image 0: 0..3, image 1: 4..7
    mask = torch.tensor([[[True, False], [False, False]], [[False, False], [False, True]]])
    partner = torch.tensor([1, 0])
    out = mix(x, mask, partner)
    assert out[0, 0].tolist() == [[4.0, 1.0], [2.0, 3.0]]
    assert out[1, 0].tolist() == [[4.0, 5.0], [6.0, 3.0]]
    labels = torch.tensor([[[1, 1], [1, 1]], [[2, 2], [2, 2]]])
    assert mix(labels, mask, partner).tolist() == [[[2, 1], [1, 1]], [[2, 2], [2, 1]]]
    assert mix(torch.tensor([10.0, 20.0]).reshape(2, 1, 1).expand(2, 2, 2), mask, partner)[0, 0, 0] == 20.0
    with pytest.raises(ValueError, match="does not fit"):
        mix(x, mask[:, :1], partner)


@pytest.mark.parametrize("area", [0.5, 0.25])
def test_cutmix_boxes_cover_the_area_and_are_reproducible(area):
    g = torch.Generator().manual_seed(3)
    masks = cutmix_masks(16, 32, 40, area, generator=g)
    assert masks.shape == (16, 32, 40) and masks.dtype == torch.bool
    for m in masks:
        ys, xs = m.nonzero(as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert int(m.sum()) == h * w  # one rectangle
        assert int(area * 40) + 1 <= w <= 39
        assert abs(h * w - area * 32 * 40) <= w  # the height is rounded from the area
    again = cutmix_masks(16, 32, 40, area, generator=torch.Generator().manual_seed(3))
    assert torch.equal(masks, again)


def test_cutmix_rejects_bad_areas():
    for area in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="area"):
            cutmix_masks(1, 8, 8, area)
