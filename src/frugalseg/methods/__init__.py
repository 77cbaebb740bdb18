"""Training methods, found by name in a registry (``method.name`` in a config)."""

from __future__ import annotations

from pydantic import ValidationError

from frugalseg.methods import action, dii_dcr, mean_teacher, mlds, pce, pscv, supervised  # noqa: F401  (register)
from frugalseg.methods.base import METHODS, Method, MethodOptions, StepContext, StepOutput, register_method

__all__ = [
    "METHODS",
    "Method",
    "MethodOptions",
    "StepContext",
    "StepOutput",
    "get_method",
    "register_method",
    "validate_method_options",
]


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; :class:`KeyError` listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}") from None


def validate_method_options(method: object, source: str = "<config>") -> MethodOptions:
    """Check ``method.name`` and ``method.options`` of a config; :class:`ConfigError` naming the bad key."""
    from frugalseg.errors import ConfigError

    name = method.name  # type: ignore[attr-defined]
    if name not in METHODS:
        raise ConfigError(f"{source}: method.name: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    try:
        return METHODS[name].Options.model_validate(method.options)  # type: ignore[attr-defined]
    except ValidationError as exc:
        bad = []
        for err in exc.errors():
            loc = ".".join(["method", "options", *(str(p) for p in err["loc"])])
            bad.append(f"{loc}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}")
        raise ConfigError(f"{source}: {'; '.join(bad)}") from exc
