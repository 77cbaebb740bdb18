"""The training methods, found by name in a registry (``method.name`` in a config).

Importing this package registers all seven; :func:`build_method` builds one from a run's config.
"""

from __future__ import annotations

from frugalseg.methods import action, dii_dcr, mean_teacher, mlds, pce, pscv, supervised  # noqa: F401  (register)
from frugalseg.methods.registry import (
    METHODS,
    build_method,
    get_method,
    net_factory,
    register_method,
    validate_method_options,
)

__all__ = ["METHODS", "build_method", "get_method", "net_factory", "register_method", "validate_method_options"]
