r"""Per-instance loss weights learned from the strong labels: the dynamic instance indicator (DII).

Pan et al., *Label-Efficient Hybrid-Supervised Learning for Medical Image Segmentation*, AAAI 2022,
Algorithm 1. Every weak instance k (a box, say) has a weight γ_k ∈ [0, 1] on its loss. After a network
step, γ moves along the upper-level gradient of the strong-data loss L_S with respect to γ, in the
influence-function form with the inverse Hessian replaced by the identity::

    ∂L_S / ∂γ_k  =  − g_S · g_k          g_S = ∇_θ L_S (mean over strong pixels),  g_k = ∇_θ ℓ_k
    γ_k         ←  clip(γ_k − β · step(∂L_S / ∂γ_k), 0, 1)

where ``step`` is the raw gradient (Algorithm 1: plain gradient descent) or Adam's normalised step
(the authors' code). An instance whose gradient points the way the strong labels pull (g_S · g_k > 0)
gains weight; one that pulls against them loses it.

The gradients are taken with respect to the final classifier only (a :class:`~torch.nn.Conv2d`, the
U-Net's 3×3 head), with its input features held fixed, as the authors' code does. Then every
per-pixel cross-entropy gradient is an outer product, and the gradient of a whole segment of pixels
(one weak instance, or all strong pixels) is exact and cheap:

    ∂CE_p / ∂z_p = softmax(z_p) − onehot(y_p) =: e_p                 (C,)
    ∂/∂W Σ_{p ∈ k} CE_p = Σ_{p ∈ k} e_p ⊗ patch_p(F)                   (C, F·kh·kw)
    ∂/∂b Σ_{p ∈ k} CE_p = Σ_{p ∈ k} e_p

with patch_p(F) the classifier's receptive field at p. Per image, the instances' masked errors become the
output channels of one weight-gradient convolution (``torch.nn.grad.conv2d_weight``): one call gives
every instance's gradient, with no per-instance backward pass and no copy of the features per instance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_weight

from frugalseg.choices import StrEnum

__all__ = [
    "IndicatorOptimizer",
    "IndicatorState",
    "cross_entropy_error",
    "indicator_step",
    "influence",
    "segment_classifier_gradients",
    "weighted_cross_entropy",
]


class IndicatorOptimizer(StrEnum):
    """How γ follows its gradient: ``sgd`` (Algorithm 1 as printed) or ``adam`` (the authors' code)."""

    SGD = "sgd"
    ADAM = "adam"

    def __str__(self) -> str:
        return str(self.value)


def weighted_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, ignore_index: int = -1) -> Tensor:
    """Cross-entropy with a weight per pixel, averaged over the labelled pixels::

        L = Σ_p w_p · CE(z_p, y_p) / |{p : y_p ≠ ignore}|

    The denominator does not depend on the weights, so lowering an instance's γ lowers its share of the
    loss instead of being normalised away (the authors' code multiplies the per-pixel loss by γ, then
    takes the mean).

    Args:
        logits: (B, C, H, W).
        target: (B, H, W) int64 class indices, ``ignore_index`` where unlabelled.
        weight: (B, H, W) per-pixel weights (no gradient flows into them).
        ignore_index: label of pixels that do not count.

    Returns:
        scalar fp32 loss; 0 with a gradient path when no pixel is labelled.
    """
    logits = logits.float()
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
    return (ce * weight.detach().float() * valid).sum() / valid.sum()


def cross_entropy_error(logits: Tensor, target: Tensor, ignore_index: int = -1) -> Tensor:
    """``softmax(z_p) − onehot(y_p)`` per pixel: the gradient of CE_p with respect to the logits z_p.

    Args:
        logits: (B, C, H, W).
        target: (B, H, W) int64, ``ignore_index`` where unlabelled (the error is 0 there).

    Returns:
        (B, C, H, W) fp32, detached.
    """
    logits = logits.detach().float()
    valid = (target != ignore_index).unsqueeze(1)
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2).float()
    return (torch.softmax(logits, dim=1) - onehot) * valid


def _output_size(classifier: nn.Conv2d, size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The classifier's numeric padding and the (H, W) it maps an input of ``size`` to."""
    padding = classifier.padding
    if isinstance(padding, str):
        raise ValueError(f"segment_classifier_gradients needs a convolution with numeric padding; got {padding!r}")
    out = tuple(
        (size[d] + 2 * padding[d] - classifier.dilation[d] * (classifier.kernel_size[d] - 1) - 1)
        // classifier.stride[d] + 1
        for d in range(2)
    )
    return padding, out


def segment_classifier_gradients(
    features: Tensor, error: Tensor, segments: Tensor, num_segments: int, classifier: nn.Conv2d
) -> tuple[Tensor, Tensor]:
    """Sum, per segment of pixels, of the per-pixel CE gradients with respect to a conv classifier.

    Exact for ``logits = classifier(features)`` (see the module docstring): segment ``s`` gets
    ``Σ_{p : segments_p = s} e_p ⊗ patch_p(features)`` for the weight and ``Σ e_p`` for the bias.

    Args:
        features: (B, F, H_in, W_in) the classifier's input (detached; cast to fp32).
        error: (B, C, H, W) ``∂ loss_p / ∂ logits_p`` per pixel, e.g. :func:`cross_entropy_error`.
        segments: (B, H, W) int64 segment of each pixel in ``[0, num_segments)``, or -1 for none.
        num_segments: number of segments S.
        classifier: the final :class:`~torch.nn.Conv2d` (only its geometry is read: kernel, stride,
            padding, dilation; ``groups`` must be 1).

    Returns:
        ``(sums, counts)``: (S, P) fp32 with P = C·F·kh·kw (+ C with a bias), laid out as
        ``torch.cat([weight.flatten(), bias])``; and (S,) the number of pixels of each segment.
        Divide to get each segment's mean-loss gradient.

    Raises:
        ValueError: shapes that do not fit the classifier, or a grouped convolution.
    """
    if classifier.groups != 1:
        raise ValueError("segment_classifier_gradients needs a convolution with groups=1")
    b, c, h, w = error.shape
    if segments.shape != (b, h, w):
        raise ValueError(f"segments must be (B, H, W) = {(b, h, w)}; got {tuple(segments.shape)}")
    if features.shape[:2] != (b, classifier.in_channels) or c != classifier.out_channels:
        raise ValueError(f"features {tuple(features.shape)} / error {tuple(error.shape)} do not fit {classifier}")
    padding, out_size = _output_size(classifier, features.shape[2:])
    if out_size != (h, w):
        raise ValueError(f"the classifier maps features {tuple(features.shape[2:])} to {out_size}, not to the "
                         f"error's {(h, w)}")
    with_bias = classifier.bias is not None
    size = classifier.weight.numel() + (c if with_bias else 0)
    sums = error.new_zeros(num_segments, size)
    counts = error.new_zeros(num_segments)
    for i in range(b):
        seg = segments[i]
        ids = torch.unique(seg[seg >= 0])
        if not len(ids):
            continue
        member = (seg.unsqueeze(0) == ids.reshape(-1, 1, 1)).float()  # (S_i, H, W)
        # every segment's errors as S_i·C output channels of one convolution: its weight gradient is the
        # per-segment sum Σ_p e_p ⊗ patch_p(features), computed by the convolution's own backward kernel
        grad_out = member.unsqueeze(1) * error[i].float().unsqueeze(0)  # (S_i, C, H, W)
        grad_w = conv2d_weight(
            features[i : i + 1].detach().float(), (len(ids) * c, *classifier.weight.shape[1:]),
            grad_out.reshape(1, -1, h, w), classifier.stride, padding, classifier.dilation,
        ).reshape(len(ids), -1)
        parts = [grad_w, grad_out.sum(dim=(2, 3))] if with_bias else [grad_w]
        sums.index_add_(0, ids, torch.cat(parts, dim=1))
        counts.index_add_(0, ids, member.sum(dim=(1, 2)))
    return sums, counts


def influence(strong_grad: Tensor, instance_grads: Tensor) -> Tensor:
    """The upper-level gradient of Algorithm 1 with H⁻¹ = I: ``∂L_S/∂γ_k = − g_S · g_k``.

    Args:
        strong_grad: (P,) g_S, the mean gradient of the strong loss.
        instance_grads: (K, P) g_k, one row per weak instance.

    Returns:
        (K,): negative for an instance aligned with the strong labels (its γ should grow).
    """
    return -(instance_grads.float() @ strong_grad.float())


class IndicatorState:
    """Adam's per-instance state, next to γ: first and second moments and the number of steps taken.

    A plain record of tensors (all the same shape as γ) so that :func:`indicator_step` stays pure
    and the caller decides where the state lives (the method keeps it in checkpointed buffers).
    """

    def __init__(self, exp_avg: Tensor, exp_avg_sq: Tensor, steps: Tensor) -> None:
        self.exp_avg = exp_avg
        self.exp_avg_sq = exp_avg_sq
        self.steps = steps


def indicator_step(
    gamma: Tensor,
    grad: Tensor,
    state: IndicatorState,
    lr: float,
    optimizer: IndicatorOptimizer | str = IndicatorOptimizer.ADAM,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> tuple[Tensor, IndicatorState]:
    """One upper-level step on the γ of some instances, clipped to ``bounds`` (the paper's [0, 1]).

    ``sgd``: ``γ ← clip(γ − lr · grad)`` (Algorithm 1). ``adam``: Adam's step with bias correction
    counted **per instance** (``state.steps``): an instance is updated only when it was seen, so its own
    step count, not the global one, says how far its moments are from their zero start (as
    ``torch.optim.SparseAdam`` keeps lazy moments). With a single step Adam moves γ by ``lr`` in the
    direction of ``−grad``, whatever the gradient's scale, which is why the authors' code uses it: the
    raw ``g_S · g_k`` is tiny and its scale changes over training.

    Args:
        gamma: (K,) the current weights.
        grad: (K,) ``∂L_S/∂γ`` (see :func:`influence`).
        state: moments and step counts of these K instances (ignored by ``sgd``).
        lr: step size β.
        optimizer: ``adam`` or ``sgd``.
        betas, eps: Adam's.
        bounds: the interval γ is clipped to.

    Returns:
        ``(gamma, state)``: new tensors; the inputs are not modified.

    Raises:
        ValueError: an unknown optimiser, or shapes that differ.
    """
    try:
        optimizer = IndicatorOptimizer(optimizer)
    except ValueError:
        raise ValueError(f"optimizer must be one of {', '.join(repr(o.value) for o in IndicatorOptimizer)}; "
                         f"got {optimizer!r}") from None
    if grad.shape != gamma.shape:
        raise ValueError(f"grad {tuple(grad.shape)} and gamma {tuple(gamma.shape)} differ")
    grad = grad.to(gamma.dtype)
    if optimizer == IndicatorOptimizer.SGD:
        new = gamma - lr * grad
        return new.clamp(*bounds), state
    beta1, beta2 = betas
    steps = state.steps + 1
    exp_avg = beta1 * state.exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * state.exp_avg_sq + (1 - beta2) * grad * grad
    t = steps.to(gamma.dtype)
    m_hat = exp_avg / (1 - beta1**t)
    v_hat = exp_avg_sq / (1 - beta2**t)
    new = gamma - lr * m_hat / (v_hat.sqrt() + eps)
    return new.clamp(*bounds), IndicatorState(exp_avg, exp_avg_sq, steps)
