"""The method registry: a config's ``method.name`` to its class, and a built method from a config.

Each method module registers its class with :func:`register_method`; ``frugalseg.methods`` imports the
seven so that they are all known. Building a method from a name is the command side's job (``train``,
``eval``, the bench): the training loop receives a built :class:`~frugalseg.training.Method` and never
looks a name up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from frugalseg.config import MethodConfig, ModelConfig, RunConfig
from frugalseg.errors import ConfigError, describe_validation
from frugalseg.training import Method, MethodOptions, NetFactory

__all__ = ["METHODS", "build_method", "get_method", "net_factory", "register_method", "validate_method_options"]

METHODS: dict[str, type[Method[Any]]] = {}
"""Every registered method class by its config name."""

M = TypeVar("M", bound=type[Method[Any]])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: make a method findable by the name a config gives (``method.name: pscv``)."""

    def decorate(cls: M) -> M:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorate


def get_method(name: str) -> type[Method[Any]]:
    """The method class registered as ``name``; :class:`KeyError` listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}") from None


def validate_method_options(method: MethodConfig, source: str = "<config>") -> MethodOptions:
    """Check ``method.name`` and ``method.options`` of a config; :class:`ConfigError` naming the bad key."""
    if method.name not in METHODS:
        raise ConfigError(f"{source}: method.name: unknown method {method.name!r}; "
                          f"known: {', '.join(sorted(METHODS))}")
    try:
        return METHODS[method.name].Options.model_validate(method.options)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation(exc, ('method', 'options'))}") from exc


def net_factory(model: ModelConfig, in_channels: int, num_classes: int) -> NetFactory:
    """A builder of fresh U-Nets as ``model`` describes, reading ``in_channels`` and giving ``num_classes``."""
    from frugalseg.nets import UNet

    def build_net() -> UNet:
        return UNet(in_channels=in_channels, num_classes=num_classes, **dict(model))

    return build_net


def build_method(config: RunConfig, in_channels: int, num_classes: int) -> Method[Any]:
    """The configured method with its networks built for data of ``in_channels`` and ``num_classes``."""
    cls = get_method(config.method.name)
    options = cls.Options.model_validate(config.method.options)
    return cls(options, net_factory(config.model, in_channels, num_classes), num_classes)
