"""The string enum behind every named choice of a config or a function (``norm: batch``, ``reduction: sum``).

Python 3.10, which the package supports, has no ``enum.StrEnum``; this is the same idea (as MONAI's
``StrEnum``), in one place so every choice parses, prints and compares alike.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["StrEnum"]


class StrEnum(str, Enum):
    """A string enum whose members equal their values (``Norm.BATCH == "batch"``) and print as them.

    Configs hold plain strings, which pydantic turns into members; :meth:`parse` does the same for a
    function argument, with an error that names the option and the allowed values.
    """

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def parse(cls, value: str | StrEnum, option: str) -> Any:  # noqa: ANN401 (returns a member of cls)
        """The member for ``value``; a ``ValueError`` naming ``option`` and the allowed values otherwise."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{option} must be one of {allowed}; got {value!r}") from None
