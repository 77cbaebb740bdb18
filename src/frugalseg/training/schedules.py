"""Learning-rate and loss-weight schedules shared by every method (SSL4MIS, WSL4MIS, ACTION).

Pure functions of the iteration, so that a resumed run recomputes them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def poly_lr_factor(iteration: int, max_iterations: int, power: float = 0.9, warmup_iterations: int = 0) -> float:
    """Multiplier of the base learning rate at ``iteration``: linear warm-up, then ``(1 - t/T) ** power``.

    This is the poly schedule all three reference code bases use (SSL4MIS, WSL4MIS,
    ACTION: ``lr_0 * (1 - t/T) ** 0.9``), with an optional linear warm-up from 0.
    """
    if warmup_iterations and iteration < warmup_iterations:
        return (iteration + 1) / warmup_iterations
    progress = min(max(iteration, 0), max_iterations) / max_iterations
    return max(0.0, 1.0 - progress) ** power


def cosine_lr_factor(iteration: int, max_iterations: int, warmup_iterations: int = 0) -> float:
    """Multiplier of the base learning rate: linear warm-up from 0, then half a cosine from 1 to 0 at the end.

    With a warm-up this is the one-cycle shape (Smith 2018; ``torch.optim.lr_scheduler.OneCycleLR`` with
    ``anneal_strategy="cos"``, ``pct_start = warmup / T`` and a final learning rate of 0): the cosine spans the
    iterations after the warm-up, ``0.5 (1 + cos(pi (t - W) / (T - W)))``.
    """
    if warmup_iterations and iteration < warmup_iterations:
        return (iteration + 1) / warmup_iterations
    span = max(1, max_iterations - warmup_iterations)
    progress = min(max(iteration - warmup_iterations, 0), span) / span
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def sigmoid_rampup(iteration: float, length: float) -> float:
    """Mean-teacher ramp-up ``exp(-5 (1 - t/L)^2)`` in [0, 1] (Laine & Aila 2017; SSL4MIS ``ramps.py``).

    ``length == 0`` means no ramp-up (weight 1 from the start).
    """
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(iteration, 0.0), length) / length
    return float(math.exp(-5.0 * phase * phase))


def linear_rampup(iteration: float, length: float) -> float:
    """Linear ramp from 0 to 1 over ``length`` iterations (used by some methods' warm-ups)."""
    if length <= 0:
        return 1.0
    return min(max(iteration, 0.0), length) / length


def ema_decay(iteration: int, target: float) -> float:
    """The EMA teacher's decay at ``iteration``: ``min(1 - 1/(t+1), target)`` (SSL4MIS ``update_ema_variables``).

    Early on the teacher follows the student closely (a teacher of random weights is useless);
    after ``1/(1-target)`` steps it reaches the target decay.
    """
    return min(1.0 - 1.0 / (iteration + 1), target)


def split_iterations(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` iterations in proportion to ``weights`` (largest remainder; exact sum).

    Ties in the remainders go to the earlier stage, so ``split_iterations(20, [1, 1, 1]) == [7, 7, 6]``.

    Raises:
        ValueError: a negative weight, or all weights zero.
    """
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"stage weights must be non-negative and not all zero; got {list(weights)}")
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts
