"""Type rules of config values that pydantic's lax mode lets through.

Pydantic (lax mode) turns ``true`` into ``1`` for an ``int`` field, so ``train.iterations=true`` ran one
iteration. A boolean is refused wherever the field's type holds a number but no boolean; elsewhere
(strings to enums, lists to tuples) the lax conversions configs rely on stay.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

__all__ = ["refuse_bool_number"]

_NUMBERS = (int, float)


def _accepts(annotation: Any) -> tuple[bool, bool]:  # noqa: ANN401
    """(takes a number, takes a bool) for a field annotation, looking inside ``X | None`` and containers."""
    if annotation is bool:
        return False, True
    if annotation in _NUMBERS:
        return True, False
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        parts = [_accepts(a) for a in get_args(annotation)]
        return any(n for n, _ in parts), any(b for _, b in parts)
    return False, False


def _element(annotation: Any) -> Any:  # noqa: ANN401
    """The element type of ``tuple[int, ...]`` / ``list[float]`` (``None`` for anything else)."""
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not Ellipsis]
    if origin in (tuple, list) and args and all(a == args[0] for a in args):
        return args[0]
    if origin in (Union, types.UnionType):
        inner = [_element(a) for a in get_args(annotation) if a is not type(None)]
        return inner[0] if len(inner) == 1 else None
    return None


def refuse_bool_number(annotation: Any, value: Any) -> Any:  # noqa: ANN401
    """``value`` unchanged, or ``ValueError`` when it is a boolean (or holds one) where a number is meant."""
    number, boolean = _accepts(annotation)
    if isinstance(value, bool) and number and not boolean:
        raise ValueError(f"{str(value).lower()} is a boolean; give a number")
    element = _element(annotation)
    if element is not None and isinstance(value, (list, tuple)):
        number, boolean = _accepts(element)
        if number and not boolean and any(isinstance(v, bool) for v in value):
            raise ValueError(f"{list(value)} holds a boolean; give numbers")
    return value
