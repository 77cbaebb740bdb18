"""YAML reading that refuses a key given twice in one mapping (PyYAML's ``safe_load`` keeps the last one).

A config holding ``lr: 0.01`` near the top and ``lr: 0.1`` further down trains with 0.1 without a word;
reading it here fails instead, naming the file, the key and both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from frugalseg.errors import ConfigError

__all__ = ["load_yaml_text"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader whose mappings refuse duplicate keys."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, seen[key], line)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _DuplicateKey(Exception):
    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(f"key {key!r} is given twice (lines {first} and {again}); keep one")


def load_yaml_text(text: str, source: str | Path) -> Any:  # noqa: ANN401 (YAML holds any value)
    """Parse ``text`` as YAML; :class:`ConfigError` naming ``source`` on a syntax error or a duplicate key."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # PyYAML: a "\U" escape beyond Unicode
        first = " ".join(str(exc).split())
        raise ConfigError(f"{source}: not valid YAML ({first})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None
