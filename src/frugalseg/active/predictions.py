"""Softmax maps of unannotated slices, and the two predictions whose disagreement ``suggest`` measures.

The slices are resized to the network's training input (``data.patch_size``, bilinear, corner-aligned,
as evaluation does) and scored on that grid: scores rank slices against each other, so the grid only
has to be the same for all of them.

The two predictions: a method with an EMA teacher (mean teacher, ACTION, MLDS) gives the teacher and
its student, two models trained together that drift apart where the data says little; any other
method gives its network on the slice and on the slice flipped left-right (test-time flip), flipped back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frugalseg.data.types import SliceItem
from frugalseg.methods.restore import load_trained_method

__all__ = ["ScoringModel", "load_scoring_model", "softmax_pairs"]


@dataclass
class ScoringModel:
    """The networks ``suggest`` reads and what they were trained for.

    Attributes:
        first: the network the checkpoint is evaluated with.
        second: the EMA teacher's student, or ``None`` (then the second prediction is a test-time flip).
        pair: how the two predictions of ``disagreement`` are made, in words (printed with the suggestions).
    """

    first: nn.Module
    second: nn.Module | None
    pair: str
    num_classes: int
    patch_size: tuple[int, int]
    batch_size: int
    device: torch.device


def load_scoring_model(checkpoint: str | Path, device: torch.device) -> ScoringModel:
    """Rebuild the method of ``checkpoint`` (safe loading) and pick its two predictions.

    Raises:
        CheckpointError: the file is missing, unsafe, or does not fit its own config.
    """
    method, trained = load_trained_method(checkpoint, device)
    pairs = [(t, s) for t, s in method.ema_pairs if t in method.teachers and s in method.nets]
    second: nn.Module | None = None
    pair = "test-time flip: the network on the slice and on the slice flipped left-right"
    if pairs:
        teacher, student = pairs[0]
        first, second = method.teachers[teacher], method.nets[student]
        pair = f"EMA teacher ({teacher!r}) against its student ({student!r})"
    else:
        first = trained.network
    size = trained.config.data.patch_size
    return ScoringModel(first.eval(), None if second is None else second.eval(), pair, trained.num_classes,
                        (int(size[0]), int(size[1])), int(trained.config.train.val_batch_size), device)


def _softmax(net: nn.Module, x: Tensor) -> Tensor:
    return torch.softmax(net(x).float(), dim=1)


def _batch(items: Sequence[SliceItem], size: tuple[int, int], device: torch.device) -> Tensor:
    images = []
    for item in items:
        x = torch.from_numpy(np.ascontiguousarray(item.image, dtype=np.float32))[None, None].to(device)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        images.append(x)
    return torch.cat(images)


def softmax_pairs(model: ScoringModel, items: Sequence[SliceItem],
                  second: bool = True) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Per batch of ``items`` (in order): the first prediction's softmax maps (B, C, h, w) and, if ``second``,
    the second prediction's (else ``None``)."""
    with torch.inference_mode():
        for start in range(0, len(items), model.batch_size):
            x = _batch(items[start:start + model.batch_size], model.patch_size, model.device)
            p = _softmax(model.first, x)
            q = None
            if second and model.second is not None:
                q = _softmax(model.second, x)
            elif second:
                q = _softmax(model.first, x.flip(-1)).flip(-1)
            yield p, q
