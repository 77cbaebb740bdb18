"""Seeded generators that depend only on a seed and a name, never on item order or on workers."""

from __future__ import annotations

import hashlib

import numpy as np

from frugalseg.errors import ConfigError


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def named_rng(seed: int, name: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and SHA-256 of ``name`` (never Python's salted ``hash``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _hash_int(name)])))


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """The generator of one item: seeded by ``seed`` and SHA-256 of the id, so order and workers do not matter."""
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return named_rng(seed, item_id)


def check_seed(seed: object) -> int:
    """``seed`` as an int, or a one-line error when it is not a non-negative integer (``True`` is not a seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
