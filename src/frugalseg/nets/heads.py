"""Projection, prediction and representation heads that sit on the U-Net's feature taps (ACTION).

They read what :class:`frugalseg.nets.unet.UNet` returns with ``return_features=True`` and are dropped at
inference. Shapes follow the official ACTION code (``code/model.py`` @ 77730a7, methods/action.md §4.3),
written for frugalseg's U-Net of any width:

- :class:`GlobalProjection` (``MLP``): global average pool of the bottleneck, then two linear layers;
- :class:`LinearPredictor` (``latent_predictor``): two linear layers on the student side only (BYOL);
- :class:`WindowProjection` (``ProjectionHead``, "convmlp"): pool a window of the logit map to a fixed grid,
  then two 1x1 convolutions;
- :class:`WindowPredictor` (``outputs_predictor``): two 1x1 convolutions;
- :class:`RepresentationHead`: the bottleneck and every decoder stage resized to one grid and concatenated,
  then a 3x3 convolution without bias and a 1x1 convolution, one embedding per pixel.

The official heads have no non-linearity between their layers; neither do these (a difference from
BYOL/MoCo heads that we keep, since the published numbers were obtained with it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor, nn

__all__ = ["GlobalProjection", "LinearPredictor", "RepresentationHead", "WindowPredictor", "WindowProjection"]


class GlobalProjection(nn.Sequential):
    """(B, C, h, w) feature map -> (B, out_dim): global average pool, ``Linear(C, C)``, ``Linear(C, out_dim)``."""

    def __init__(self, in_channels: int, out_dim: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(in_channels, in_channels),
            nn.Linear(in_channels, out_dim),
        )


class LinearPredictor(nn.Sequential):
    """(B, D) -> (B, D): two linear layers, the student's predictor (the teacher has none)."""

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Linear(dim, dim), nn.Linear(dim, dim))


class WindowProjection(nn.Sequential):
    """(N, C, h, w) windows -> (N, C, p, p): adaptive average pool to ``p x p``, 1x1 conv to 2C, 1x1 conv to C."""

    def __init__(self, channels: int, pool: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(pool),
            nn.Conv2d(channels, 2 * channels, kernel_size=1),
            nn.Conv2d(2 * channels, channels, kernel_size=1),
        )


class WindowPredictor(nn.Sequential):
    """(N, C, p, p) -> (N, C, p, p): two 1x1 convolutions, the student's window predictor."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, kernel_size=1), nn.Conv2d(channels, channels, kernel_size=1))


class RepresentationHead(nn.Module):
    """Multi-scale U-Net features -> one ``dim``-dimensional embedding per pixel of an output grid.

    Every map is resized to the output grid (bilinear with ``align_corners=True`` when it is coarser, as
    the official code; area averaging when it is finer, which only happens with ``stride > 1``),
    the maps are concatenated (bottleneck first), then ``3x3 conv (no bias) -> 1x1 conv``.

    Args:
        in_channels: channels of the tapped maps in order (for the default U-Net (256, 128, 64, 32, 16)).
        dim: embedding size (ACTION: 512).
        stride: the output grid is the finest map's size divided by ``stride`` (ACTION: 1, the input
            resolution; a larger stride trades resolution for speed on a CPU).
    """

    def __init__(self, in_channels: Sequence[int], dim: int = 512, stride: int = 1) -> None:
        super().__init__()
        if dim < 1 or stride < 1 or not in_channels:
            raise ValueError(f"need channels, dim >= 1 and stride >= 1; got {list(in_channels)}, {dim}, {stride}")
        self.stride = int(stride)
        self.proj = nn.Sequential(
            nn.Conv2d(sum(in_channels), dim, kernel_size=3, padding=1, bias=False),
            nn.Conv2d(dim, dim, kernel_size=1),
        )

    def output_size(self, features: Sequence[Tensor]) -> tuple[int, int]:
        h, w = features[-1].shape[-2:]
        return max(1, h // self.stride), max(1, w // self.stride)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """(B, dim, H/stride, W/stride) from the maps of :attr:`UNetOutput.features` (finest last)."""
        size = self.output_size(features)
        resized = []
        for f in features:
            if tuple(f.shape[-2:]) == size:
                resized.append(f)
            elif f.shape[-2] < size[0]:
                resized.append(F.interpolate(f, size=size, mode="bilinear", align_corners=True))
            else:
                resized.append(F.adaptive_avg_pool2d(f, size))
        return self.proj(torch.cat(resized, dim=1))
