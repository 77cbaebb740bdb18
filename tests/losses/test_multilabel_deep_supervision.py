from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from frugalseg.losses.multilabel_deep_supervision import (
    box_positive_map,
    global_tag_loss,
    max_pool_map,
    multilabel_deep_supervision_loss,
    multilabel_head_loss,
    multilabel_targets,
    nearest_downsample_map,
    ordinary_deep_supervision_loss,
    singleton_map,
)

LOG2 = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def onehot(label: torch.Tensor, c: int) -> torch.Tensor:
    """(B, H, W) class indices -> (B, C, H, W) bool candidate map of a full mask."""
    return F.one_hot(label, c).permute(0, 3, 1, 2).bool()


# ---------------------------------------------------------------------------------------------------------------
# A 4x4 mask with a one-pixel-wide line of class 2 on column 1, and two pixels of class 1 on column 3:
#
#     0 2 0 0
#     0 2 0 1
#     0 2 0 1
#     0 2 0 0
#
# Max-pooled to 2x2 (blocks of rows 0-1 / 2-3 and columns 0-1 / 2-3):
#     class 0: every block            -> [[1, 1], [1, 1]]
#     class 1: (1,3) and (2,3)        -> [[0, 1], [0, 1]]
#     class 2: column 1, left blocks  -> [[1, 0], [1, 0]]
# Nearest neighbour keeps pixels (0,0), (0,2), (2,0), (2,2): all background, so both the line of
# class 2 and the pixels of class 1 disappear from the coarse target.
# ---------------------------------------------------------------------------------------------------------------

LINE = torch.tensor([[[0, 2, 0, 0], [0, 2, 0, 1], [0, 2, 0, 1], [0, 2, 0, 0]]])


def test_max_pooling_keeps_a_thin_structure_that_nearest_neighbour_deletes():
    cand = onehot(LINE, 3)
    pooled = max_pool_map(cand, (2, 2))
    assert pooled[0, 0].int().tolist() == [[1, 1], [1, 1]]
    assert pooled[0, 1].int().tolist() == [[0, 1], [0, 1]]
    assert pooled[0, 2].int().tolist() == [[1, 0], [1, 0]]
    nearest = nearest_downsample_map(cand, (2, 2))
    assert nearest[0, 0].all() and not nearest[0, 1:].any()
    # And at 1x1 (a global label) max-pooling says "every class is somewhere".
    assert max_pool_map(cand, (1, 1)).flatten().tolist() == [True, True, True]


def test_multilabel_head_loss_by_hand():
    # Logits constant per class, a = (1, -1, 0); BCE of a positive cell is softplus(-a), of a negative softplus(a).
    # 2x2 targets above: class 0 four positives, class 1 two positives and two negatives, class 2 the same.
    cand = onehot(LINE, 3)
    target, known = multilabel_targets(cand, (2, 2))
    assert known.all()  # a full mask: every cell of every class is certain
    logits = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    expected = (4 * softplus(-1) + 2 * softplus(1) + 2 * softplus(-1) + 4 * LOG2) / 12
    got = multilabel_head_loss(logits, target, known)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # The full loss sums the heads: here a 2x2 head and a 1x1 head (all positives: 3 classes at softplus(-a)).
    deep = [logits[..., :1, :1].clone(), logits.clone()]
    total = multilabel_deep_supervision_loss(deep, cand)
    expected_1x1 = (softplus(-1) + softplus(1) + LOG2) / 3
    assert total.item() == pytest.approx(expected + expected_1x1, rel=1e-6)


def test_ordinary_deep_supervision_by_hand():
    # Nearest neighbour makes every 2x2 cell background: CE = -log softmax(1, -1, 0)[0] at every cell.
    cand = onehot(LINE, 3)
    logits = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    expected = -1.0 + math.log(math.e + math.exp(-1) + 1.0)
    assert ordinary_deep_supervision_loss([logits], cand).item() == pytest.approx(expected, rel=1e-6)


def test_full_masks_give_the_official_loss():
    # The official compute_mlds, restated: one-hot target, adaptive max-pool per head, BCE(sigmoid), mean over
    # (C, h, w) per image, sum over the batch and the heads.
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 4, (3, 16, 16), generator=g)
    deep = [torch.randn(3, 4, s, s, generator=g) for s in (1, 2, 4, 8, 16)]
    expected = 0.0
    target_full = F.one_hot(label, 4).permute(0, 3, 1, 2).float()
    for logits in deep:
        target = F.adaptive_max_pool2d(target_full, logits.shape[-2:])
        expected += torch.nn.BCELoss(reduction="none")(torch.sigmoid(logits), target).mean(dim=(1, 2, 3)).sum()
    got = multilabel_deep_supervision_loss(deep, onehot(label, 4))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # reduction="mean" divides the batch sum by the 3 images.
    got_mean = multilabel_deep_supervision_loss(deep, onehot(label, 4), reduction="mean")
    assert got_mean.item() == pytest.approx(expected.item() / 3, rel=1e-5)
    # The softmax option is the official alternative normalisation.
    expected_soft = sum(
        F.binary_cross_entropy(torch.softmax(lg, 1), F.adaptive_max_pool2d(target_full, lg.shape[-2:]),
                               reduction="none").mean(dim=(1, 2, 3)).sum()
        for lg in deep
    )
    got_soft = multilabel_deep_supervision_loss(deep, onehot(label, 4), activation="softmax")
    assert got_soft.item() == pytest.approx(expected_soft.item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Weak labels. One 4x4 image, classes (background, 1, 2):
#   * a box of class 1 on the top-left 2x2 block: class 1 is no candidate outside it;
#   * class 2 absent (an image-level tag without it): no candidate anywhere;
#   * so outside the box only background remains (certain), inside it background or class 1 (unknown).
# At a 2x2 head: background is a certain positive in the 3 cells away from the box and unknown in the
# boxed cell; class 1 is a certain negative in those 3 cells and unknown in the boxed cell (a positive
# there only when boxes count as positives); class 2 is negative in all 4 cells. Zero logits:
# BCE = log 2 per known cell, and the normaliser is C·h·w = 12.
# ---------------------------------------------------------------------------------------------------------------


def _weak():
    cand = torch.ones(1, 3, 4, 4, dtype=torch.bool)
    cand[0, 1] = False
    cand[0, 1, :2, :2] = True
    cand[0, 2] = False
    box_label = torch.zeros(1, 4, 4, dtype=torch.long)
    box_label[0, :2, :2] = 1
    return cand, box_label


def test_box_and_absent_tag_give_certain_cells_at_every_scale():
    cand, box_label = _weak()
    target, known = multilabel_targets(cand, (2, 2))
    assert target[0, 0].int().tolist() == [[0, 1], [1, 1]] and not target[0, 1:].any()
    assert known[0, 0].int().tolist() == [[0, 1], [1, 1]]
    assert known[0, 1].int().tolist() == [[0, 1], [1, 1]]
    assert known[0, 2].all()
    zeros = torch.zeros(1, 3, 2, 2)
    assert multilabel_head_loss(zeros, target, known).item() == pytest.approx(10 * LOG2 / 12, rel=1e-6)
    # Full resolution: 12 background pixels, 12 pixels outside the box for class 1, 16 for class 2, of 3*16.
    target4, known4 = multilabel_targets(cand, (4, 4))
    assert multilabel_head_loss(torch.zeros(1, 3, 4, 4), target4, known4).item() == pytest.approx(40 * LOG2 / 48)
    # 1x1 (global): background certainly somewhere, class 1 maybe, class 2 certainly nowhere.
    target1, known1 = multilabel_targets(cand, (1, 1))
    assert known1.flatten().tolist() == [True, False, True]
    assert target1.flatten().tolist() == [True, False, False]


def test_box_positives_on_coarse_heads():
    cand, box_label = _weak()
    boxes = box_positive_map(cand, box_label)
    assert boxes[0, 1].sum() == 4 and not boxes[0, 0].any() and not boxes[0, 2].any()
    target, known = multilabel_targets(cand, (2, 2), boxes)
    assert target[0, 1].int().tolist() == [[1, 0], [0, 0]]
    assert known[0, 1].all()
    zeros = [torch.zeros(1, 3, 2, 2)]
    with_boxes = multilabel_deep_supervision_loss(zeros, cand, box_positives=boxes, box_positive_heads=1)
    without = multilabel_deep_supervision_loss(zeros, cand, box_positives=boxes, box_positive_heads=0)
    assert with_boxes.item() == pytest.approx(11 * LOG2 / 12) and without.item() == pytest.approx(10 * LOG2 / 12)


def test_box_positive_map_ignores_pixels_outside_the_image_and_images_without_boxes():
    cand, box_label = _weak()
    cand[0, 1, 3, 3] = True  # outside the image after a rotation, candidates allow anything ...
    box_label[0, 3, 3] = -1  # ... and the box mask says "outside"
    boxes = box_positive_map(cand, box_label)
    assert not boxes[0, 1, 3, 3] and boxes[0, 1].sum() == 4
    no_boxes = torch.full((1, 4, 4), -1, dtype=torch.long)
    assert not box_positive_map(cand, no_boxes).any()


def test_clicks_are_certain_positives_and_scribble_free_pixels_unknown():
    cand = torch.ones(1, 2, 4, 4, dtype=torch.bool)
    cand[0, 0, 3, 1] = False  # a click of class 1 at (3, 1)
    assert singleton_map(cand)[0, 1, 3, 1] and singleton_map(cand).sum() == 1
    target, known = multilabel_targets(cand, (2, 2))
    assert target[0, 1].int().tolist() == [[0, 0], [1, 0]]
    assert known.sum() == 1


def test_global_tag_loss_by_hand():
    logits = torch.tensor([[[[0.0, 3.0], [1.0, -2.0]], [[-1.0, 2.0], [0.5, 0.0]], [[-3.0, -1.0], [-2.0, -4.0]]]])
    presence = torch.tensor([[-1, 1, 0]], dtype=torch.int8)
    # class 0 unknown; class 1 present, max logit 2 -> softplus(-2); class 2 absent, max logit -1 -> softplus(-1).
    expected = (softplus(-2.0) + softplus(-1.0)) / 3
    assert global_tag_loss(logits, presence).item() == pytest.approx(expected, rel=1e-6)
    # Softmax option: max over cells of the softmax probabilities, then BCE.
    p = torch.softmax(logits, 1).amax(dim=(-2, -1))[0]
    expected_soft = (-math.log(p[1].item()) - math.log(1 - p[2].item())) / 3
    assert global_tag_loss(logits, presence, activation="softmax").item() == pytest.approx(expected_soft, rel=1e-5)
    # Nothing known: 0, attached, finite gradient.
    z = logits.clone().requires_grad_(True)
    loss = global_tag_loss(z, torch.full((1, 3), -1, dtype=torch.int8))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# Properties, reductions, numerics, errors.
# ---------------------------------------------------------------------------------------------------------------


def test_loss_vanishes_when_logits_match_the_targets():
    cand = onehot(LINE, 3)
    deep = []
    for s in (1, 2, 4):
        target, _ = multilabel_targets(cand, (s, s))
        deep.append(torch.where(target, 30.0, -30.0))
    assert multilabel_deep_supervision_loss(deep, cand).item() < 1e-6


def test_mean_reduction_counts_only_supervised_images():
    cand = torch.cat([onehot(LINE, 3), torch.ones(1, 3, 4, 4, dtype=torch.bool)])  # a mask and an unlabelled image
    deep = [torch.zeros(2, 3, 2, 2)]
    total = multilabel_deep_supervision_loss(deep, cand, reduction="sum")
    assert total.item() == pytest.approx(LOG2)  # the unlabelled image contributes nothing
    assert multilabel_deep_supervision_loss(deep, cand, reduction="mean").item() == pytest.approx(LOG2)
    both = torch.cat([onehot(LINE, 3)] * 2)
    assert multilabel_deep_supervision_loss(deep, both, reduction="sum").item() == pytest.approx(2 * LOG2)
    assert multilabel_deep_supervision_loss(deep, both, reduction="mean").item() == pytest.approx(LOG2)


def test_nothing_known_gives_an_attached_zero_without_nan():
    deep = [torch.randn(2, 3, s, s, requires_grad=True) for s in (1, 2)]
    cand = torch.ones(2, 3, 4, 4, dtype=torch.bool)
    for loss in (multilabel_deep_supervision_loss(deep, cand), ordinary_deep_supervision_loss(deep, cand)):
        assert loss.item() == 0.0
        loss.backward()
    assert all(torch.isfinite(d.grad).all() and d.grad.abs().sum() == 0 for d in deep)


def test_bf16_logits_give_fp32_losses():
    cand = onehot(LINE, 3)
    deep = [torch.randn(1, 3, 2, 2).bfloat16(), torch.randn(1, 3, 4, 4).bfloat16()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [
            multilabel_deep_supervision_loss(deep, cand),
            ordinary_deep_supervision_loss(deep, cand),
            global_tag_loss(deep[0], torch.tensor([[1, 1, 0]], dtype=torch.int8)),
        ]
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 3, 2, 2)], c, reduction="avg"), "reduction"),
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 3, 2, 2)], c, activation="relu"), "activation"),
        (lambda c: multilabel_deep_supervision_loss([], c), "no deep-supervision heads"),
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 2, 2, 2)], c), r"\(B, C\)"),
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 3, 8, 8)], c), "finer than the input"),
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 3, 2, 2)], c.int()), "bool"),
        (lambda c: multilabel_deep_supervision_loss([torch.zeros(1, 3, 2, 2)], c, box_positive_heads=-1), ">= 0"),
        (lambda c: global_tag_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2)), "presence"),
        (lambda c: box_positive_map(c, torch.zeros(1, 2, 2, dtype=torch.long)), "box_label"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(onehot(LINE, 3))
