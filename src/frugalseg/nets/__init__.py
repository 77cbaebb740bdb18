"""Networks: one configurable 2D U-Net with deep-supervision heads and feature taps."""

from __future__ import annotations

from frugalseg.nets.unet import Activation, Norm, OutputHead, UNet, UNetOutput, Upsample

__all__ = ["Activation", "Norm", "OutputHead", "UNet", "UNetOutput", "Upsample"]
