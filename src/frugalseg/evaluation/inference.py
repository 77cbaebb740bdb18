"""Volume inference the way the literature does it, and per-volume scoring of a model on cases.

Protocol (SSL4MIS/ACTION ``test_single_volume``; docs/evaluation.md): every slice of a (D, H, W) volume is
resized to the network's input size, the slices go through the 2D network in batches, the argmax labels
are resized back to the stored (H, W) grid with nearest-neighbour interpolation (``scipy.ndimage.zoom``,
order 0, exactly the call of the reference scripts), and the stack is scored as one 3D volume.

Two choices are options rather than fixed:

- ``image_resize``: the reference scripts resize the *image* with order 0 (nearest) too, at training and
  at test time; frugalseg defaults to bilinear (``align_corners=True``, the corner-aligned grid of
  ``scipy.ndimage.zoom``), which is the better resampler. Whatever the training pipeline used is what
  inference must use.
- ``resize_back``: ``"labels"`` (the protocol above) or ``"probabilities"``: resize the softmax
  probabilities bilinearly to the stored grid and take the argmax there, which gives smoother
  boundaries when the network grid is coarser than the stored one. Papers' numbers use ``"labels"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from frugalseg.choices import StrEnum
from frugalseg.data.types import Case
from frugalseg.evaluation.metrics import VolumeResult, compute_volume_metrics

__all__ = ["EvalTimings", "ImageResize", "ResizeBack", "evaluate_cases", "predict_volume", "resize_slices"]


class ImageResize(StrEnum):
    """How slices are resized to the network size: ``"bilinear"`` (default) or ``"nearest"`` (SSL4MIS's order 0)."""

    BILINEAR = "bilinear"
    NEAREST = "nearest"


class ResizeBack(StrEnum):
    """What is resized back to the stored grid: argmax ``"labels"`` (nearest; the papers') or ``"probabilities"``."""

    LABELS = "labels"
    PROBABILITIES = "probabilities"


def resize_slices(volume: np.ndarray, size: Sequence[int], order: Literal[0, 1, 2, 3, 4, 5]) -> np.ndarray:
    """Resize every slice of a (D, H, W) array to ``size`` with ``scipy.ndimage.zoom`` (corner-aligned grid).

    This is the SSL4MIS call ``zoom(slice, (h / H, w / W), order=order)`` applied to all slices at once (a
    zoom factor of 1 along D leaves the slice axis untouched).

    Args:
        volume: (D, H, W).
        size: target (h, w).
        order: spline order; 0 for labels (nearest).
    """
    d, h, w = volume.shape
    if (h, w) == tuple(size):
        return volume
    out = ndimage.zoom(volume, (1.0, size[0] / h, size[1] / w), order=order)
    if out.shape != (d, *size):  # zoom rounds the output shape; make a mismatch loud, not silent
        raise RuntimeError(f"zoom gave {out.shape}, expected {(d, *size)}")
    return out


def _autocast(device: torch.device, amp: bool) -> Any:  # noqa: ANN401 (a context manager)
    if not amp:
        return nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _predict(
    model: nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    batch_size: int,
    amp: bool,
    device: torch.device | str | None,
    channels_last: bool | None,
    image_resize: str | ImageResize,
    resize_back: str | ResizeBack,
) -> tuple[np.ndarray, int]:
    """:func:`predict_volume`, also returning the number of classes the model predicts."""
    image_resize = ImageResize.parse(image_resize, "image_resize")
    back = ResizeBack.parse(resize_back, "resize_back")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (D, H, W) or (H, W); got shape {image.shape}")
    volume = image[None] if image.ndim == 2 else image
    d, h, w = volume.shape
    size = (int(patch_size[0]), int(patch_size[1]))
    dev = torch.device(device) if device is not None else _model_device(model)
    fmt = _memory_format(model, dev, channels_last)
    if image_resize == ImageResize.NEAREST:
        volume = resize_slices(volume, size, order=0)
    labels = np.empty((d, *size) if back == ResizeBack.LABELS else (d, h, w), dtype=np.uint8)
    num_classes = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, d, batch_size):
                x = torch.from_numpy(np.ascontiguousarray(volume[start:start + batch_size]))[:, None].to(dev)
                if image_resize == ImageResize.BILINEAR and tuple(x.shape[-2:]) != size:
                    x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
                out, num_classes = _batch_labels(model, x.contiguous(memory_format=fmt), amp, back, (h, w))
                labels[start:start + len(x)] = out.to(torch.uint8).cpu().numpy()
    finally:
        model.train(was_training)
    if back == ResizeBack.LABELS:
        labels = resize_slices(labels, (h, w), order=0)
    return (labels[0] if image.ndim == 2 else labels), num_classes


def _memory_format(model: nn.Module, dev: torch.device, channels_last: bool | None) -> torch.memory_format:
    """The input layout, and the model moved to it: channels-last by default on CPU and CUDA (faster convolutions)."""
    if channels_last is None:
        channels_last = dev.type in ("cpu", "cuda")
    if channels_last:
        cast(Any, model).to(memory_format=torch.channels_last)  # no-op if it is; Module.to's stubs lack the kwarg
    return torch.channels_last if channels_last else torch.contiguous_format


def _batch_labels(model: nn.Module, x: torch.Tensor, amp: bool, resize_back: ResizeBack,
                  size: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """The labels of one batch of slices and the number of classes the model predicts.

    With ``resize_back="probabilities"`` the softmax is resized to the slice's ``size`` before the argmax, so that
    borders follow the probabilities rather than the coarse labels; otherwise the labels are taken as predicted.
    """
    with _autocast(x.device, amp):
        logits = model(x)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(logits).__name__}, not a logits tensor")
    if resize_back != ResizeBack.PROBABILITIES:
        return logits.argmax(dim=1), int(logits.shape[1])
    probs = torch.softmax(logits.float(), dim=1)
    if tuple(probs.shape[-2:]) != size:
        probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=True)
    return probs.argmax(dim=1), int(logits.shape[1])


def predict_volume(
    model: nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int] = (256, 256),
    batch_size: int = 8,
    amp: bool = False,
    device: torch.device | str | None = None,
    channels_last: bool | None = None,
    image_resize: str | ImageResize = ImageResize.BILINEAR,
    resize_back: str | ResizeBack = ResizeBack.LABELS,
) -> np.ndarray:
    """Class labels of a volume (or one 2D image) at its stored grid, slice by slice.

    Runs under ``torch.inference_mode()`` with the model in eval mode (its previous mode is restored, so
    the trainer can call this mid-training).

    Args:
        model: a 2D network mapping (B, 1, h, w) to (B, C, h, w) logits; it must already be on ``device``.
        image: (D, H, W) or (H, W) float intensities as the source normalised them.
        patch_size: the network's input (h, w), the training resolution (divisible by 16 for the U-Net).
        batch_size: slices per forward pass (on 2 CPU cores 8 was fastest with bf16; smaller with fp32).
        amp: autocast to bf16 (CPU, and CUDA where supported; else fp16). Labels may differ from fp32 at
            a few near-tie pixels.
        device: where to run; default: where the model's parameters are.
        channels_last: feed channels-last batches and convert the model to channels-last **in place** (a
            layout change only; it halves CPU inference time). ``None``: on for CPU and CUDA, as the
            training config's default.
        image_resize: ``"bilinear"`` or ``"nearest"`` (see the module docstring).
        resize_back: ``"labels"`` (nearest, the papers') or ``"probabilities"`` (bilinear, then argmax).

    Returns:
        uint8 labels of the same shape as ``image``.

    Raises:
        ValueError: bad option, image shape or batch size.
    """
    labels, _ = _predict(model, image, patch_size, batch_size, amp, device, channels_last, image_resize,
                         resize_back)
    return labels


class EvalTimings:
    """Seconds spent in inference and in metrics by :func:`evaluate_cases` (pass one to fill it)."""

    def __init__(self) -> None:
        self.inference = 0.0
        self.metrics = 0.0

    def __repr__(self) -> str:
        return f"EvalTimings(inference={self.inference:.2f} s, metrics={self.metrics:.2f} s)"


def evaluate_cases(
    model: nn.Module,
    cases: Iterable[Case],
    patch_size: Sequence[int] = (256, 256),
    batch_size: int = 8,
    amp: bool = False,
    device: torch.device | str | None = None,
    channels_last: bool | None = None,
    image_resize: str | ImageResize = ImageResize.BILINEAR,
    resize_back: str | ResizeBack = ResizeBack.LABELS,
    num_classes: int | None = None,
    timings: EvalTimings | None = None,
) -> list[VolumeResult]:
    """Predict and score every case, per volume and per class (see :mod:`frugalseg.evaluation.metrics`).

    Distances are in mm for cases with a ``spacing`` and in voxels otherwise (the SSL4MIS HDF5 files).

    Args:
        model: the network to evaluate.
        cases: cases with a reference ``label``.
        patch_size, batch_size, amp, device, channels_last, image_resize, resize_back: as :func:`predict_volume`.
        num_classes: classes including background; default: the model's output channels.
        timings: if given, accumulates the seconds spent in inference and in metrics.

    Returns:
        One :class:`VolumeResult` per case, in order.

    Raises:
        ValueError: a case has no reference label.
    """
    results = []
    for case in cases:
        if case.label is None:
            raise ValueError(f"case {case.case_id!r} has no reference label to score against")
        t0 = time.perf_counter()
        pred, predicted_classes = _predict(model, case.image, patch_size, batch_size, amp, device, channels_last,
                                           image_resize, resize_back)
        t1 = time.perf_counter()
        results.append(compute_volume_metrics(pred, case.label, num_classes or predicted_classes,
                                              spacing=case.spacing, case_id=case.case_id))
        if timings is not None:
            timings.inference += t1 - t0
            timings.metrics += time.perf_counter() - t1
    return results
