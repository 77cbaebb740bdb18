"""The state of the dynamic instance indicator: γ per weak instance, Adam's moments, pending hypergradients.

Kept as registered buffers of an ``nn.Module`` so that the engine checkpoints and restores them with
the method's ``state_dict`` and moves them with ``.to(device)``.

Instances are addressed by a key ``(item, slot)``: ``item`` is the training item's index in the run's
dataset (the batch's ``index``), ``slot`` the instance within the item (its box index, its class, or 0
for the whole image). Every table is an (items, slots) array. A method is built before it sees the
data, so the tables start empty and grow to the largest key seen; loading a checkpoint gives them the
checkpoint's size. Under DDP every rank grows to the same size and applies the same sums (all-reduced),
so γ is identical on every rank at every step, and rank 0's checkpoint holds the global state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from frugalseg.losses.instance_weighting import IndicatorOptimizer, IndicatorState, indicator_step
from frugalseg.training.collectives import reduce_across_ranks

__all__ = ["InstanceIndicators"]

_TABLES = ("gamma", "exp_avg", "exp_avg_sq", "steps", "hypergrad_sum", "hypergrad_count")


class InstanceIndicators(nn.Module):
    """γ ∈ [0, 1] per weak instance and everything its update needs.

    Buffers (``(items, slots)`` unless said): ``gamma``; Adam's ``exp_avg``, ``exp_avg_sq`` and per-instance
    ``steps`` (how many updates an instance has had); ``hypergrad_sum`` / ``hypergrad_count``, the
    ``∂L_S/∂γ`` values gathered since the last update; ``strong_grad`` (networks, P), the exponential
    moving average of each network's strong-loss gradient, with ``strong_grad_updates`` for its bias
    correction.

    Args:
        init: γ of an instance never updated (the authors' [0, 1] configuration: 0.5).
        num_networks: networks whose strong gradients are tracked.
        grad_size: P, the classifier's parameter count.
    """

    gamma: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor
    steps: Tensor
    hypergrad_sum: Tensor
    hypergrad_count: Tensor
    strong_grad: Tensor
    strong_grad_updates: Tensor

    def __init__(self, init: float, num_networks: int, grad_size: int) -> None:
        super().__init__()
        self.init = float(init)
        for name in _TABLES:
            dtype = torch.int64 if name == "steps" else torch.float32
            self.register_buffer(name, torch.zeros(0, 0, dtype=dtype))
        self.register_buffer("strong_grad", torch.zeros(num_networks, grad_size))
        self.register_buffer("strong_grad_updates", torch.zeros((), dtype=torch.int64))

    # ----- the table --------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.gamma.shape
        return int(rows), int(cols)

    def lookup(self, items: Tensor, slots: Tensor) -> Tensor:
        """γ of the instances ``(items[k], slots[k])``; ``init`` for those the table does not hold yet."""
        rows, cols = self.shape
        inside = (items < rows) & (slots < cols)
        out = torch.full(items.shape, self.init, dtype=torch.float32, device=items.device)
        if inside.any():
            out[inside] = self.gamma[items[inside], slots[inside]].to(out.device)
        return out

    def grow(self, rows: int, cols: int) -> None:
        """Enlarge every table to at least (rows, cols): new γ are ``init``, the rest zero."""
        old_rows, old_cols = self.shape
        rows, cols = max(rows, old_rows), max(cols, old_cols)
        if (rows, cols) == (old_rows, old_cols):
            return
        for name in _TABLES:
            old = getattr(self, name)
            fill = self.init if name == "gamma" else 0
            new = torch.full((rows, cols), fill, dtype=old.dtype, device=old.device)
            new[:old_rows, :old_cols] = old
            setattr(self, name, new)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        """Take the checkpoint's table size first (a fresh module's tables are empty)."""
        for name in _TABLES:
            saved = state_dict.get(prefix + name)
            if saved is not None and tuple(saved.shape) != tuple(getattr(self, name).shape):
                current = getattr(self, name)
                setattr(self, name, torch.empty(saved.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----- the update -------------------------------------------------------------------------------------------
    def update_strong_grad(self, grads: Tensor, decay: float) -> Tensor:
        """Fold this step's strong gradients (networks, P) into the moving average; the bias-corrected average.

        ``decay = 0`` keeps only the current batch's gradient.
        """
        self.strong_grad.mul_(decay).add_(grads.to(self.strong_grad), alpha=1.0 - decay)
        self.strong_grad_updates.add_(1)
        correction = 1.0 - decay ** int(self.strong_grad_updates)
        return self.strong_grad / correction

    def add_hypergrads(self, items: Tensor, slots: Tensor, values: Tensor) -> None:
        """Add ``∂L_S/∂γ`` of the instances ``(items, slots)`` to the pending sums, summed over all ranks.

        Every rank must call this at the same steps (it runs collectives under DDP), with its own,
        possibly empty, instances.
        """
        needed = torch.tensor(
            [int(items.max()) + 1 if items.numel() else 0, int(slots.max()) + 1 if slots.numel() else 0],
            dtype=torch.int64, device=self.gamma.device,
        )
        rows, cols = (int(v) for v in reduce_across_ranks(needed, "max"))
        self.grow(rows, cols)
        rows, cols = self.shape
        delta = torch.zeros(2, rows, cols, dtype=torch.float32, device=self.gamma.device)
        if items.numel():
            flat = (items * cols + slots).to(self.gamma.device)
            delta[0].view(-1).index_add_(0, flat, values.float().to(self.gamma.device))
            delta[1].view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
        delta = reduce_across_ranks(delta)
        self.hypergrad_sum.add_(delta[0])
        self.hypergrad_count.add_(delta[1])

    @torch.no_grad()
    def step(self, lr: float, optimizer: IndicatorOptimizer, betas: tuple[float, float], eps: float) -> int:
        """One upper-level step on every instance with pending hypergradients (their mean); clears them.

        Returns:
            the number of instances updated.
        """
        seen = self.hypergrad_count > 0
        n = int(seen.sum())
        if n:
            grad = self.hypergrad_sum[seen] / self.hypergrad_count[seen]
            state = IndicatorState(self.exp_avg[seen], self.exp_avg_sq[seen], self.steps[seen])
            new, state = indicator_step(self.gamma[seen], grad, state, lr, optimizer, betas, eps)
            self.gamma[seen] = new
            self.exp_avg[seen] = state.exp_avg
            self.exp_avg_sq[seen] = state.exp_avg_sq
            self.steps[seen] = state.steps if optimizer == IndicatorOptimizer.ADAM else self.steps[seen] + 1
        self.hypergrad_sum.zero_()
        self.hypergrad_count.zero_()
        return n
