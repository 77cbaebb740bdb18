"""Rebuild a trained network from a checkpoint alone (the checkpoint carries its config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from frugalseg.config import RunConfig
from frugalseg.errors import CheckpointError
from frugalseg.methods.registry import build_method
from frugalseg.training.checkpoint import load_training_state

if TYPE_CHECKING:
    from frugalseg.training.method import Method


@dataclass
class TrainedModel:
    """A network ready for inference and what it was trained for."""

    network: nn.Module
    config: RunConfig
    num_classes: int
    class_names: dict[int, str]
    iteration: int


def select_network(method: Method, name: str | None, path: str | Path) -> nn.Module:
    """The network to predict with: the method's own choice, or its trainable network or EMA teacher ``name``.

    A mean teacher evaluates its teacher and DII + DCR its student; asking for the other member of a
    checkpoint (``student``, ``teacher``, ``peer``) is how one measures what that choice is worth.

    Raises:
        CheckpointError: ``name`` is none of the checkpoint's networks (the message lists them).
    """
    if name is None:
        return method.inference_network()
    members: dict[str, nn.Module] = {**dict(method.nets.items()), **dict(method.teachers.items())}
    if name not in members:
        raise CheckpointError(f"{path}: no network {name!r} in this {method.name} checkpoint; "
                              f"it holds {', '.join(sorted(members))}")
    return members[name]


def load_trained_method(
    path: str | Path, device: str | torch.device = "cpu", network: str | None = None
) -> tuple[Method, TrainedModel]:
    """:func:`load_trained_model`, also returning the whole method (students and EMA teachers, e.g. for ``suggest``).

    Raises:
        CheckpointError: as :func:`load_trained_model`.
    """
    state = load_training_state(path, map_location=device)
    try:
        config = RunConfig.model_validate(state.config)
        method = build_method(config, int(state.in_channels), int(state.num_classes))
        method.load_state_dict(state.method)
    except Exception as exc:  # noqa: BLE001 (pydantic, KeyError, size mismatches: all mean "does not fit")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: checkpoint does not fit its own config/architecture ({first})") from exc
    method.to(device).eval()
    net = select_network(method, network, path)
    names = {int(k): v for k, v in state.class_names.items()}
    return method, TrainedModel(net, config, int(state.num_classes), names, int(state.iteration))


def load_trained_model(
    path: str | Path, device: str | torch.device = "cpu", network: str | None = None
) -> TrainedModel:
    """Read ``path`` safely, rebuild the method's networks, load the weights, return the inference network.

    ``network`` names another of the checkpoint's networks to return instead (:func:`select_network`).

    Raises:
        CheckpointError: the file is missing, not a safe frugalseg checkpoint, its weights do not fit
            the architecture its config describes, or it holds no network ``network``.
    """
    return load_trained_method(path, device, network)[1]
