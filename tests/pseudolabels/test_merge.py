"""The overlap rule on hand-made logit maps, independent of any model."""

from __future__ import annotations

import numpy as np
import pytest

from frugalseg.pseudolabels.litemedsam import BoxPrompt
from frugalseg.pseudolabels.merge import resolve_boxes


def test_higher_logit_wins_in_the_overlap_and_no_mask_is_background():
    boxes = [BoxPrompt(0, 0, 3, 3), BoxPrompt(0, 2, 3, 5)]
    logits = np.full((2, 4, 6), -5.0)
    logits[0, :, 0:4] = [[1.0, 1.0, 3.0, 0.5]]  # box 0 sure on column 2, unsure on column 3
    logits[1, :, 2:6] = [[2.0, 2.0, -1.0, 4.0]]  # box 1 the reverse; its column 4 is not in its mask
    label = resolve_boxes(logits, boxes, [3, 1])
    expected = np.array([[3, 3, 3, 1, 0, 1]] * 4)
    assert np.array_equal(label, expected)


def test_a_mask_is_cut_at_its_box_and_ties_go_to_the_first_box():
    boxes = [BoxPrompt(1, 1, 2, 2), BoxPrompt(1, 1, 2, 2)]
    logits = np.ones((2, 4, 4))  # both masks cover the whole image, equal scores
    label = resolve_boxes(logits, boxes, [2, 3])
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[1:3, 1:3] = 2
    assert np.array_equal(label, expected)


def test_no_boxes_is_all_background_and_mismatched_inputs_are_refused():
    assert not resolve_boxes(np.zeros((0, 3, 3)), [], []).any()
    with pytest.raises(ValueError, match="K boxes"):
        resolve_boxes(np.zeros((2, 3, 3)), [BoxPrompt(0, 0, 1, 1)], [1])
