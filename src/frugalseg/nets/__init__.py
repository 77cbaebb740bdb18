"""Networks: one configurable 2D U-Net with deep-supervision heads and feature taps."""

from __future__ import annotations

from frugalseg.nets.unet import (
    MLDS_UNET,
    PRESETS,
    SSL4MIS_UNET,
    Activation,
    Norm,
    OutputHead,
    UNet,
    UNetOutput,
    Upsample,
    build_network,
)

__all__ = [
    "Activation",
    "MLDS_UNET",
    "Norm",
    "OutputHead",
    "PRESETS",
    "SSL4MIS_UNET",
    "UNet",
    "UNetOutput",
    "Upsample",
    "build_network",
]
