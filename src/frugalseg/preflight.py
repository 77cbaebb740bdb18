"""Checks that run when a config is loaded, so that nothing the network, the method or the device needs
fails after a run folder was written.

Before these checks, a bad ``model.norm`` or ``train.device=cuda`` on a CPU-only torch surfaced as a
Python traceback when the network was built, after ``config.json`` was written. Here every such
value is refused with a :class:`~frugalseg.errors.ConfigError` naming its key, at load time:

- the U-Net's own options (``model.norm``, ``model.upsample``, ``model.features``, ``model.dropout``,
  ``model.ds_hidden``), each with the allowed values;
- everything else the method needs from the network (``mlds`` needs ``model.deep_supervision``):
  the method is built once on PyTorch's ``meta`` device, which allocates no memory and runs no
  kernel, so it costs milliseconds whatever the network's size;
- the device (:func:`check_device`), also used by ``eval --device`` and ``predict --device``.

And, once the data is read (:func:`check_run_inputs`): that the annotations give the method
something to learn from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from frugalseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from frugalseg.config import ModelConfig, RunConfig
    from frugalseg.engine.run_data import RunData

__all__ = ["check_config", "check_device", "check_model", "check_run_inputs"]

_PLACEHOLDER_CLASSES = 4
"""Class count for the trial build at load time (the data's count is not known yet; no check depends on it)."""


def check_device(spec: str | None, key: str = "train.device") -> torch.device | None:
    """``spec`` as a :class:`torch.device` this torch can use; :class:`ConfigError` naming ``key`` otherwise.

    ``None`` stays ``None`` (the caller picks cuda when available, else cpu).
    """
    if spec is None:
        return None
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{key}: {spec!r} is not a device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {spec!r}, but this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}: {spec!r}, but there are only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{key}: {spec!r}, but this torch sees no Apple GPU (mps); use cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{key}: {spec!r} is not a device frugalseg trains on (cpu, cuda, cuda:N, mps)")
    return device


def check_model(model: ModelConfig) -> None:
    """The U-Net's options, each refused with its key and the allowed values."""
    from frugalseg.nets.unet import Norm, Upsample

    for key, enum in (("norm", Norm), ("upsample", Upsample)):
        try:
            enum.parse(getattr(model, key), f"model.{key}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if len(model.features) < 2 or any(f <= 0 for f in model.features):
        raise ConfigError(f"model.features must hold at least two positive channel counts (one per level, finest "
                          f"first); got {list(model.features)}")
    if len(model.dropout) != len(model.features):
        raise ConfigError(f"model.dropout needs one probability per level of model.features "
                          f"({len(model.features)}); got {len(model.dropout)}: {list(model.dropout)}")
    if any(not 0.0 <= p < 1.0 for p in model.dropout):
        raise ConfigError(f"model.dropout probabilities must lie in [0, 1); got {list(model.dropout)}")
    if model.ds_hidden <= 0:
        raise ConfigError(f"model.ds_hidden must be positive; got {model.ds_hidden}")


def check_config(config: RunConfig, source: str = "<config>") -> None:
    """Model options, the method built on the ``meta`` device, and the device: all before any work."""
    try:
        check_model(config.model)
        check_device(config.train.device)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    from frugalseg.methods import build_method

    try:
        with torch.device("meta"):
            build_method(config, 1, _PLACEHOLDER_CLASSES)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{source}: method {config.method.name!r} cannot be built with this model: {first}") from None


def check_run_inputs(config: RunConfig, data: RunData) -> None:
    """What needs the data: the method must find items to learn from in the annotations.

    Raises:
        DataError: naming the annotation file (or ``data.simulate``) when no item fits the method.
    """
    from frugalseg.data.dataset import SliceDataset
    from frugalseg.engine.batches import select_items
    from frugalseg.engine.run_data import annotations_origin
    from frugalseg.methods import get_method

    cls = get_method(config.method.name)
    requirements = cls.requirements(cls.Options.model_validate(config.method.options))
    dataset = SliceDataset(data.train_items, data.annotations, data.source.num_classes, config.data.patch_size,
                           augment=False, origin=annotations_origin(config))
    select_items(dataset, requirements, config.method.name)
    if not data.train_items:
        raise DataError(data.source.root, "no training items")
