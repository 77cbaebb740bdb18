"""Photometric augmentation of batches on the device: brightness/contrast jitter and Gaussian blur.

Methods that build their own views of a batch (ACTION's strong student view, its CutMix images) use
these; geometry stays in :mod:`frugalseg.data.transforms`, applied once per item by the dataset.

They follow what ACTION applies through torchvision and PIL on grayscale slices (methods/action.md
§4.4-4.5): ``ColorJitter(brightness, contrast, saturation, hue)`` of which only brightness and
contrast act on a one-channel image (saturation and hue leave gray values unchanged), and PIL's
``GaussianBlur(radius)`` with a random radius, here a true Gaussian of standard deviation ``radius``
(PIL approximates it with box blurs). Images are assumed to lie in [0, 1] (every frugalseg source
normalises to it) and are clipped back to it, as torchvision does for float images.

Random draws come from a CPU generator (default: torch's global one, which the engine seeds and
checkpoints), so a resumed run augments the same way; the pixels are processed on the images' device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor

__all__ = ["brightness_contrast", "gaussian_blur", "random_brightness_contrast", "random_gaussian_blur"]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def brightness_contrast(images: Tensor, brightness: Tensor, contrast: Tensor, contrast_first: Tensor) -> Tensor:
    """Scale brightness, then contrast (or the other way round where ``contrast_first``), clipping to [0, 1].

    ``brightness``: ``x · b``; ``contrast``: ``(x − mean(x)) · c + mean(x)`` with the image's mean gray value
    (torchvision's ``adjust_brightness`` / ``adjust_contrast`` on a one-channel image).

    Args:
        images: (B, 1, H, W).
        brightness, contrast: (B,) factors (1: unchanged).
        contrast_first: (B,) bool.
    """
    x = images.float()
    b = brightness.to(x.device, x.dtype).reshape(-1, 1, 1, 1)
    c = contrast.to(x.device, x.dtype).reshape(-1, 1, 1, 1)
    first = contrast_first.to(x.device).reshape(-1, 1, 1, 1)

    def adjust_contrast(t: Tensor) -> Tensor:
        mean = t.mean(dim=(1, 2, 3), keepdim=True)
        return ((t - mean) * c + mean).clamp(0.0, 1.0)

    def adjust_brightness(t: Tensor) -> Tensor:
        return (t * b).clamp(0.0, 1.0)

    out = torch.where(first, adjust_brightness(adjust_contrast(x)), adjust_contrast(adjust_brightness(x)))
    return out.to(images.dtype)


def random_brightness_contrast(
    images: Tensor, strength: float, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per image, brightness and contrast factors uniform in [1 − s, 1 + s], random order.

    ``strength = 0.2`` is ``ColorJitter(0.2, 0.2, ...)``; ``0.25`` is ReCo/ACTION's ``(0.75, 1.25)``.
    """
    if not 0.0 <= strength < 1.0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"strength must lie in [0, 1) and p in [0, 1]; got {strength}, {p}")
    n = images.shape[0]
    apply = torch.rand(n, generator=generator) < p
    b = torch.where(apply, _uniform(n, 1 - strength, 1 + strength, generator), 1.0)
    c = torch.where(apply, _uniform(n, 1 - strength, 1 + strength, generator), 1.0)
    first = torch.rand(n, generator=generator) < 0.5
    if not apply.any():
        return images
    jittered = brightness_contrast(images, b, c, first)
    return torch.where(apply.to(images.device).reshape(-1, 1, 1, 1), jittered, images)  # untouched bit for bit


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image with its own Gaussian (separable, radius ⌈3σ_max⌉, reflected borders).

    Args:
        images: (B, 1, H, W).
        sigma: (B,) standard deviations in pixels; 0 leaves an image unchanged.
    """
    b, ch, h, w = images.shape
    sigma = sigma.to(torch.float64)
    radius = max(1, math.ceil(3.0 * float(sigma.max()))) if b else 1
    radius = min(radius, h - 1, w - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    safe = sigma.clamp(min=1e-12).reshape(-1, 1)
    kernel = torch.exp(-0.5 * (offsets / safe) ** 2)
    kernel = torch.where(sigma.reshape(-1, 1) > 0, kernel, (offsets == 0).double())
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(images.device, torch.float32)
    x = images.float().reshape(1, b * ch, h, w)
    k = kernel.repeat_interleave(ch, dim=0)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.reshape(b * ch, 1, 1, -1), groups=b * ch)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.reshape(b * ch, 1, -1, 1), groups=b * ch)
    return x.reshape(b, ch, h, w).to(images.dtype)


def random_gaussian_blur(
    images: Tensor, p: float, sigma_range: tuple[float, float] = (0.15, 1.15), generator: torch.Generator | None = None
) -> Tensor:
    """With probability ``p`` per image, a Gaussian blur of σ uniform in ``sigma_range`` (ACTION: (0.15, 1.15))."""
    lo, hi = sigma_range
    if not 0.0 <= lo <= hi or not 0.0 <= p <= 1.0:
        raise ValueError(f"need 0 <= sigma_lo <= sigma_hi and p in [0, 1]; got {sigma_range}, {p}")
    n = images.shape[0]
    apply = torch.rand(n, generator=generator) < p
    sigma = torch.where(apply, _uniform(n, lo, hi, generator), 0.0)
    if not apply.any():
        return images
    return torch.where(apply.to(images.device).reshape(-1, 1, 1, 1), gaussian_blur(images, sigma), images)
