from __future__ import annotations

import pytest
import torch

from frugalseg.nets import UNet
from frugalseg.nets.heads import (
    GlobalProjection,
    LinearPredictor,
    RepresentationHead,
    WindowPredictor,
    WindowProjection,
)


def test_heads_on_unet_features():
    net = UNet(features=(8, 16, 32, 64, 128))
    out = net(torch.zeros(2, 1, 64, 64), return_features=True)
    z = LinearPredictor(32)(GlobalProjection(128, 32)(out.features[0]))
    assert z.shape == (2, 32)
    windows = WindowPredictor(4)(WindowProjection(4, 8)(torch.zeros(5, 4, 16, 16)))
    assert windows.shape == (5, 4, 8, 8)
    widths = (128, 64, 32, 16, 8)
    assert RepresentationHead(widths, dim=12)(out.features).shape == (2, 12, 64, 64)
    assert RepresentationHead(widths, dim=12, stride=4)(out.features).shape == (2, 12, 16, 16)
    head = RepresentationHead(widths, dim=12)
    assert head.proj[0].bias is None and head.proj[0].in_channels == sum(widths)
    with pytest.raises(ValueError):
        RepresentationHead(widths, dim=0)
