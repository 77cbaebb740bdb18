"""Process-group set-up for ``torchrun``: NCCL on GPUs, gloo on CPUs; a no-op in a single process."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank and world of this process; ``world_size == 1`` when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (for logging losses that every rank computed on its share)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def group_world_size() -> int:
    """Ranks in the initialised default process group; 1 when there is none.

    For code that does not get a :class:`DistInfo` (losses and method state inside a training step):
    every collective below is the identity when this is 1.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_from_ranks(tensor: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order; the tensor itself in one process.

    Every rank must call it at the same point with the same shape (the engine's per-rank batches are
    equal). Without ``differentiable`` the result carries no gradient: for method state that every rank
    must hold identically (ACTION's anchor queues). With it, gradients flow back to each rank's share
    (``torch.distributed.nn.functional.all_gather``), for a loss that must see the global batch (PSCV's
    CV loss): the backward pass sums, for each share, the gradients every rank computed; since every rank
    computes the same loss on the gathered batch, a share receives ``world_size`` times the gradient of
    that loss, and DDP's averaging of parameter gradients over ranks divides it back, so the update
    equals the single-process one on the global batch.
    """
    if group_world_size() == 1:
        return tensor
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():
            # PyTorch 2.9+ marks it deprecated in favour of the private ``_functional_collectives``; it is
            # the public autograd-aware gather and still works with NCCL and gloo.
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(tensor), dim=0)
    value = tensor.detach().contiguous()
    parts = [torch.empty_like(value) for _ in range(group_world_size())]
    dist.all_gather(parts, value)
    return torch.cat(parts, dim=0)


def reduce_across_ranks(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Elementwise ``"sum"`` or ``"max"`` of ``tensor`` over the ranks (a copy); the tensor itself in one process."""
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
    if op not in ops:
        raise ValueError(f"op must be one of {sorted(ops)}; got {op!r}")
    if group_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=ops[op])
    return out


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
