"""The bench's YAML files (matrix, cost model, papers' numbers, active-learning spec) read one way.

Each file is a pydantic model that forbids unknown keys; a file that cannot be read, or that does not
fit its model, is one :class:`~frugalseg.errors.ConfigError` naming the file and every bad key, so that
a user's own matrix or cost model is fixed in one go, and the four files' errors read alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from frugalseg.errors import ConfigError, describe_validation

__all__ = ["load_yaml_model", "shipped_file"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def shipped_file(name: str) -> Path:
    """A file shipped beside the bench's modules (``matrix.yaml``, ``cost_model.yaml``, ...)."""
    return Path(str(resources.files("frugalseg.bench") / name))


def load_yaml_model(path: Path, model: type[ModelT], what: str) -> ModelT:
    """``path`` read as YAML and validated as ``model``.

    Args:
        path: the file.
        model: its pydantic model.
        what: what the file is, for the error (``"the bench matrix"``).

    Raises:
        ConfigError: ``path: cannot read <what> (...)``, or ``path: key: problem; key: problem``, with
            ``unknown key`` for a key the model does not have and ``(top level)`` for the file as a whole
            (:func:`frugalseg.errors.describe_validation`).
    """
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from exc
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation(exc)}") from exc
