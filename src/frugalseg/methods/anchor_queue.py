"""A first-in-first-out bank of unit vectors (MoCo's queue): ACTION's anchors, kept as buffers.

The anchors and the write pointer are registered buffers, so the engine checkpoints them with the
method's ``state_dict``, moves them with ``.to(device)`` and a resumed run continues with the very same
bank. Under DDP the method gathers every rank's keys (rank order) before :meth:`AnchorQueue.enqueue`, so
every rank writes the same keys at the same place and holds the same bank; the random initial bank is
drawn from a generator of fixed seed for the same reason (the ranks' global generators differ).

The queue writes ``n`` keys at ``pointer, pointer + 1, ...`` modulo its size and advances the pointer by
``n``; unlike MoCo's it does not need the size to be a multiple of the batch. When ``n`` exceeds the
size only the last ``size`` keys stay, where sequential writes would have left them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from torch import Tensor, nn

__all__ = ["AnchorQueue"]


class AnchorQueue(nn.Module):
    """``size`` anchors of shape ``shape`` (each row ℓ2-normalised along its last dimension).

    Args:
        size: K, the number of anchors (ACTION: 36).
        shape: the shape of one anchor, e.g. ``(512,)`` or ``(windows, dim)``; ``None`` when it is only known
            at the first use (:meth:`ensure_shape`): the bank is then empty until that call.
        seed: seed of the initial random anchors (the same on every rank).
    """

    anchors: Tensor
    pointer: Tensor

    def __init__(self, size: int, shape: Sequence[int] | None = None, seed: int = 0) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be positive; got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.register_buffer("anchors", torch.zeros(self.size, 0))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64))
        if shape is not None:
            self.reset(tuple(shape))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one anchor (``(0,)`` while the bank is empty)."""
        return tuple(self.anchors.shape[1:])

    @property
    def initialised(self) -> bool:
        return self.anchors.numel() > 0

    @torch.no_grad()
    def reset(self, shape: Sequence[int]) -> None:
        """Fill the bank with random unit vectors of ``shape`` (normalised per row) and rewind the pointer."""
        g = torch.Generator().manual_seed(self.seed)
        fresh = F.normalize(torch.randn(self.size, *shape, generator=g), dim=-1)
        self.anchors = fresh.to(self.anchors.device)
        self.pointer.zero_()

    def ensure_shape(self, shape: Sequence[int]) -> None:
        """Initialise the bank for anchors of ``shape`` unless it already holds such anchors."""
        if not self.initialised or self.shape != tuple(shape):
            self.reset(tuple(shape))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` (n, *shape), normalised along the last dimension, in place of the oldest anchors."""
        if tuple(keys.shape[1:]) != self.shape:
            raise ValueError(f"keys of shape {tuple(keys.shape[1:])} do not fit anchors of shape {self.shape}")
        n = keys.shape[0]
        if n == 0:
            return
        start = int(self.pointer)
        if n > self.size:  # only the last `size` keys survive sequential writes
            start, keys = (start + n - self.size) % self.size, keys[n - self.size:]
        positions = (start + torch.arange(keys.shape[0], device=self.anchors.device)) % self.size
        self.anchors[positions] = F.normalize(keys.detach().float(), dim=-1).to(self.anchors)
        self.pointer.fill_((int(self.pointer) + n) % self.size)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        """Take the checkpoint's anchor shape first (a fresh lazy queue is empty)."""
        saved = state_dict.get(prefix + "anchors")
        if saved is not None and tuple(saved.shape) != tuple(self.anchors.shape):
            self.anchors = torch.empty(saved.shape, dtype=self.anchors.dtype, device=self.anchors.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
