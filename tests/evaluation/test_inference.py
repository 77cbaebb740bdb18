"""Volume inference: shapes back at the stored grid, exact labels through an identity-like model, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from frugalseg.data.types import Case
from frugalseg.evaluation.inference import EvalTimings, evaluate_cases, predict_volume, resize_slices
from frugalseg.nets import UNet

RNG = np.random.default_rng(0)


class LabelEcho(nn.Module):
    """Logits whose argmax is the class index nearest to the input intensity (the image *is* a label map)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.register_buffer("classes", torch.arange(num_classes, dtype=torch.float32).view(1, -1, 1, 1))
        self.weight = nn.Parameter(torch.ones(()))  # so that the model has a device and a mode to restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x * self.weight - self.classes) ** 2)


def blobs(shape: tuple[int, ...], num_classes: int = 4) -> np.ndarray:
    """A label map of a few rectangles (so that nearest resizing has large regions to keep)."""
    labels = np.zeros(shape, dtype=np.uint8)
    h, w = shape[-2:]
    for k in range(1, num_classes):
        top, left = RNG.integers(0, h // 2), RNG.integers(0, w // 2)
        labels[..., top:top + h // 3, left:left + w // 3] = k
    return labels


@pytest.mark.parametrize("stored", [(3, 40, 56), (2, 37, 53)])
def test_nearest_in_nearest_out_returns_the_stored_labels_exactly(stored):
    """Up-sampling then down-sampling with order-0 zoom is the identity when the network grid is finer."""
    labels = blobs(stored)
    out = predict_volume(LabelEcho(), labels.astype(np.float32), patch_size=(64, 64), image_resize="nearest",
                         channels_last=False)
    assert out.shape == stored and out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize("resize_back", ["labels", "probabilities"])
def test_no_resizing_at_the_network_size_is_exact(resize_back):
    labels = blobs((4, 32, 48))
    out = predict_volume(LabelEcho(), labels.astype(np.float32), patch_size=(32, 48), resize_back=resize_back,
                         batch_size=3)
    np.testing.assert_array_equal(out, labels)


def test_labels_are_resized_back_with_scipy_order_zero_zoom_as_the_reference_scripts():
    """The protocol of SSL4MIS test_single_volume: zoom(out, (x / 256, y / 256), order=0) per slice."""
    image = RNG.random((2, 30, 22)).astype(np.float32)
    net = UNet(features=(4, 8, 16, 32, 64)).eval()
    out = predict_volume(net, image, patch_size=(64, 48), image_resize="nearest", channels_last=False)
    for z in range(2):
        x = torch.from_numpy(ndimage.zoom(image[z], (64 / 30, 48 / 22), order=0))[None, None]
        with torch.no_grad():
            small = net(x).argmax(1)[0].numpy().astype(np.uint8)
        np.testing.assert_array_equal(out[z], ndimage.zoom(small, (30 / 64, 22 / 48), order=0))


@pytest.mark.parametrize("options", [{}, {"resize_back": "probabilities"}, {"amp": True, "channels_last": True},
                                     {"image_resize": "nearest", "batch_size": 1}])
def test_real_network_output_has_the_stored_shape(options):
    net = UNet(features=(4, 8, 16, 32, 64)).train()
    for shape in [(3, 45, 61), (45, 61)]:
        out = predict_volume(net, RNG.random(shape).astype(np.float32), patch_size=(32, 48), **options)
        assert out.shape == shape and out.dtype == np.uint8 and out.max() < 4
    assert net.training  # the previous mode is restored


def test_bilinear_resize_is_corner_aligned_like_scipy_order_one():
    image = RNG.random((2, 9, 13)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(image)[:, None], size=(32, 48), mode="bilinear",
                                         align_corners=True)[:, 0].numpy()
    np.testing.assert_allclose(up, resize_slices(image, (32, 48), order=1), atol=1e-5)


def test_bad_options_raise():
    image = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="image_resize must be one of 'bilinear', 'nearest'"):
        predict_volume(LabelEcho(), image, patch_size=(16, 16), image_resize="cubic")
    with pytest.raises(ValueError, match="resize_back must be one of 'labels', 'probabilities'"):
        predict_volume(LabelEcho(), image, patch_size=(16, 16), resize_back="logits")
    with pytest.raises(ValueError, match="image must be"):
        predict_volume(LabelEcho(), np.zeros((1, 2, 16, 16), np.float32), patch_size=(16, 16))


def test_evaluate_cases_scores_each_volume_with_its_spacing():
    labels = blobs((3, 40, 56))
    cases = [
        Case("a", "p1", labels.astype(np.float32), labels),
        Case("b", "p2", labels.astype(np.float32), labels, spacing=(10.0, 1.5, 1.5)),
    ]
    timings = EvalTimings()
    results = evaluate_cases(LabelEcho(), cases, patch_size=(64, 64), image_resize="nearest", timings=timings)
    assert [r.case_id for r in results] == ["a", "b"] and [r.units for r in results] == ["voxel", "mm"]
    for r in results:
        np.testing.assert_array_equal(r.dice, 1.0)
        np.testing.assert_array_equal(r.hd95, 0.0)
    assert timings.inference > 0 and timings.metrics > 0


def test_evaluate_cases_needs_a_reference():
    with pytest.raises(ValueError, match="'x' has no reference"):
        evaluate_cases(LabelEcho(), [Case("x", "p", np.zeros((1, 16, 16), np.float32), None)], patch_size=(16, 16))
