"""One configurable 2D U-Net for every method: the SSL4MIS/ACTION U-Net by default, the MLDS U-Net by settings.

The default instance is, layer for layer, the network behind the published semi- and weakly-supervised
ACDC numbers (SSL4MIS ``networks/unet.py``, ACTION ``networks/unetWithArgs.py``). Its defaults are written
once, in :class:`frugalseg.config.ModelConfig`, which a run's ``model`` section fills:

- five levels with (16, 32, 64, 128, 256) channels; each level is a block
  ``3x3 conv -> BN -> LeakyReLU -> Dropout(p) -> 3x3 conv -> BN -> LeakyReLU`` with encoder dropout
  (0.05, 0.1, 0.2, 0.3, 0.5) and 2x2 max-pooling between levels;
- decoder stages that reduce channels with a 1x1 conv, up-sample bilinearly (``align_corners=True``),
  concatenate ``[skip, up-sampled]`` and apply a block with dropout 0 (the SSL4MIS config says
  ``bilinear: False``, but the flag never reaches ``UpBlock``, so the published networks are bilinear);
- a 3x3 conv to the class logits. 1,813,764 trainable parameters for 4 classes (1,944,324 with 2x2
  transposed convolutions, ``upsample="transpose"``).

The MLDS U-Net (Reiß et al., CVPR 2021, ``Simael/mlds-unet`` ``HierarchicalUNet``; docs/methods/mlds.md) is the
same class with ``features=(64, ..., 1024)``, no dropout, ReLU, transposed up-sampling, ``head="mlp"`` and
``deep_supervision=True`` (tests/nets/test_unet.py builds it and counts its parameters).

A single forward pass can also return the feature maps that methods tap (ACTION's representation head reads
the bottleneck and every decoder stage) and the deep-supervision logits (MLDS), so that no method needs a
second pass or a forward hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

import torch
from torch import Tensor, nn

from frugalseg.choices import StrEnum
from frugalseg.config import ModelConfig

__all__ = ["Activation", "Norm", "OutputHead", "UNet", "UNetOutput", "Upsample"]

_DEFAULTS = ModelConfig()
"""The SSL4MIS/ACTION U-Net: :class:`UNet`'s keyword defaults are a default run's ``model`` section."""


class Norm(StrEnum):
    """Normalisation after every 3x3 conv (and inside the MLP heads)."""

    BATCH = "batch"
    GROUP = "group"
    INSTANCE = "instance"


class Upsample(StrEnum):
    """How a decoder stage doubles the resolution.

    ``bilinear``: 1x1 conv to the skip's channels, then bilinear x2 with ``align_corners=True`` (SSL4MIS/ACTION).
    ``transpose``: 2x2 transposed conv with stride 2 to the skip's channels (classic U-Net, MLDS).
    """

    BILINEAR = "bilinear"
    TRANSPOSE = "transpose"


class Activation(StrEnum):
    """Non-linearity after every normalisation: LeakyReLU(0.01) as SSL4MIS, ReLU as MLDS."""

    LEAKY_RELU = "leaky_relu"
    RELU = "relu"


class OutputHead(StrEnum):
    """The full-resolution segmentation head.

    ``conv3x3``: one 3x3 conv to the classes (SSL4MIS/ACTION).
    ``mlp``: 1x1 conv -> ``ds_hidden`` -> norm -> act -> 1x1 conv (MLDS ``outc_mask``).
    """

    CONV3X3 = "conv3x3"
    MLP = "mlp"


@dataclass
class UNetOutput:
    """Everything one forward pass of :class:`UNet` can give.

    Attributes:
        logits: (B, C, H, W) class logits of the full-resolution head (no softmax).
        features: the bottleneck and then every decoder stage's output, coarse to fine:
            for the default net (B, 256, H/16, W/16), (B, 128, H/8, W/8), ..., (B, 16, H, W).
            These are the maps ACTION's representation head concatenates.
        deep: per-level deep-supervision logits, coarse to fine, each (B, C, H_l, W_l) at its
            feature's resolution (MLDS heads on x5, up1..up4); empty unless ``deep_supervision``.
    """

    logits: Tensor
    features: list[Tensor] = field(default_factory=list)
    deep: list[Tensor] = field(default_factory=list)


# Let DDP and torch.compile look inside the output (flatten it like a tuple of tensors).
_register_dataclass = getattr(getattr(torch, "export", None), "register_dataclass", None)
if _register_dataclass is not None:  # torch >= 2.2
    _register_dataclass(UNetOutput)


def _norm(kind: Norm, channels: int, groups: int) -> nn.Module:
    if kind == Norm.BATCH:
        return nn.BatchNorm2d(channels)
    if kind == Norm.GROUP:
        return nn.GroupNorm(groups, channels)
    return nn.InstanceNorm2d(channels, affine=True)


def _act(kind: Activation) -> nn.Module:
    # In place is safe: every activation follows a normalisation whose backward does not need its output.
    return nn.LeakyReLU(0.01, inplace=True) if kind == Activation.LEAKY_RELU else nn.ReLU(inplace=True)


class ConvBlock(nn.Sequential):
    """``3x3 conv -> norm -> act -> Dropout(p) -> 3x3 conv -> norm -> act`` (SSL4MIS ``ConvBlock``).

    The convolutions keep their bias although a normalisation follows: the published parameter
    count (and so checkpoint compatibility in spirit) includes it.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float, norm: Norm, act: Activation,
                 groups: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            _norm(norm, out_channels, groups),
            _act(act),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            _norm(norm, out_channels, groups),
            _act(act),
        )


class UpBlock(nn.Module):
    """Up-sample the coarser map to the skip's channels and resolution, concatenate ``[skip, up]``, convolve."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: Upsample, norm: Norm,
                 act: Activation, groups: int) -> None:
        super().__init__()
        if upsample == Upsample.BILINEAR:
            self.up: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, skip_channels, kernel_size=1),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock(2 * skip_channels, out_channels, 0.0, norm, act, groups)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


def _mlp_head(in_channels: int, hidden: int, num_classes: int, norm: Norm, act: Activation,
              groups: int) -> nn.Sequential:
    """MLDS output head: ``1x1 conv -> hidden -> norm -> act -> 1x1 conv -> classes``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=1),
        _norm(norm, hidden, groups),
        _act(act),
        nn.Conv2d(hidden, num_classes, kernel_size=1),
    )


def _check_sizes(in_channels: int, num_classes: int, features: tuple[int, ...], dropout: tuple[float, ...],
                 head_dropout: float, ds_hidden: int | None, norm_groups: int | None) -> None:
    """:class:`ValueError` naming the first size that does not fit (``ds_hidden``, ``norm_groups``: ``None`` unused)."""
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be positive; got {in_channels}, {num_classes}")
    if len(features) < 2 or any(f < 1 for f in features):
        raise ValueError(f"features must hold at least two positive channel counts; got {features}")
    if len(dropout) != len(features):
        raise ValueError(f"dropout needs one probability per level ({len(features)}); got {dropout}")
    if any(not 0.0 <= p < 1.0 for p in (*dropout, head_dropout)):
        raise ValueError(f"dropout probabilities must lie in [0, 1); got {dropout}, head_dropout={head_dropout}")
    if ds_hidden is not None and ds_hidden < 1:
        raise ValueError(f"ds_hidden must be positive; got {ds_hidden}")
    if norm_groups is not None:
        widths = (*features, ds_hidden) if ds_hidden is not None else features
        bad = [c for c in widths if norm_groups < 1 or c % norm_groups]
        if bad:
            raise ValueError(f"norm='group' needs channel counts divisible by norm_groups={norm_groups}; "
                             f"{bad} are not")


class UNet(nn.Module):
    """A 2D U-Net with optional deep-supervision heads and feature taps.

    Args:
        in_channels: input channels (1 for MR/CT slices).
        num_classes: output classes including background.
        features: channels per level, finest first; its length is the number of levels (at least 2),
            and inputs must be divisible by ``2 ** (len(features) - 1)``.
        dropout: dropout probability inside each encoder level's block (same length as ``features``);
            decoder blocks use none, as SSL4MIS.
        norm: ``"batch"``, ``"group"`` or ``"instance"``.
        upsample: ``"bilinear"`` (1x1 conv + bilinear, SSL4MIS/ACTION) or ``"transpose"`` (2x2 transposed conv).
        deep_supervision: add one head per level (bottleneck and each decoder stage), as MLDS; their
            logits come back in :attr:`UNetOutput.deep` when ``return_features=True``.
        ds_hidden: hidden channels of the MLP heads (deep-supervision heads and ``head="mlp"``); MLDS uses 64.
        act: ``"leaky_relu"`` (SSL4MIS) or ``"relu"`` (MLDS).
        head: full-resolution head, ``"conv3x3"`` (SSL4MIS) or ``"mlp"`` (MLDS).
        head_dropout: ``Dropout2d`` probability before the full-resolution head (MLDS ``dropout_probability``).
        norm_groups: groups for ``norm="group"``; every channel count of the net must be divisible by it.

    Raises:
        ValueError: an option is not one of its allowed values, or the sizes do not fit together.

    Example:
        >>> net = UNet()  # the SSL4MIS/ACTION U-Net for 4 classes
        >>> out = net(torch.zeros(2, 1, 256, 256), return_features=True)
        >>> out.logits.shape, [f.shape[1] for f in out.features]
        (torch.Size([2, 4, 256, 256]), [256, 128, 64, 32, 16])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        features: Sequence[int] = _DEFAULTS.features,
        dropout: Sequence[float] = _DEFAULTS.dropout,
        norm: str | Norm = _DEFAULTS.norm,
        upsample: str | Upsample = _DEFAULTS.upsample,
        deep_supervision: bool = _DEFAULTS.deep_supervision,
        ds_hidden: int = _DEFAULTS.ds_hidden,
        act: str | Activation = Activation.LEAKY_RELU,
        head: str | OutputHead = OutputHead.CONV3X3,
        head_dropout: float = 0.0,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        norm_ = Norm.parse(norm, "norm")
        upsample_ = Upsample.parse(upsample, "upsample")
        act_ = Activation.parse(act, "act")
        head_ = OutputHead.parse(head, "head")
        features = tuple(int(f) for f in features)
        dropout = tuple(float(p) for p in dropout)
        _check_sizes(in_channels, num_classes, features, dropout, head_dropout,
                     ds_hidden if deep_supervision or head_ == OutputHead.MLP else None,
                     norm_groups if norm_ == Norm.GROUP else None)

        self.in_channels = in_channels
        self.num_classes = num_classes
        self.features = features
        self.deep_supervision = deep_supervision
        self.divisor = 2 ** (len(features) - 1)

        self.encoder = nn.ModuleList()
        for level, (width, p) in enumerate(zip(features, dropout)):
            block = ConvBlock(features[level - 1] if level else in_channels, width, p, norm_, act_, norm_groups)
            self.encoder.append(nn.Sequential(nn.MaxPool2d(2), block) if level else block)
        self.decoder = nn.ModuleList(
            UpBlock(features[level + 1], features[level], features[level], upsample_, norm_, act_, norm_groups)
            for level in reversed(range(len(features) - 1))
        )
        if head_ == OutputHead.CONV3X3:
            out: nn.Module = nn.Conv2d(features[0], num_classes, kernel_size=3, padding=1)
        else:
            out = _mlp_head(features[0], ds_hidden, num_classes, norm_, act_, norm_groups)
        self.head = nn.Sequential(nn.Dropout2d(head_dropout), out) if head_dropout > 0 else out
        # Coarse to fine: the bottleneck, then each decoder stage.
        self.deep_heads = (
            nn.ModuleList(_mlp_head(w, ds_hidden, num_classes, norm_, act_, norm_groups) for w in features[::-1])
            if deep_supervision
            else None
        )

    @overload
    def forward(self, x: Tensor, return_features: Literal[False] = ...) -> Tensor: ...

    @overload
    def forward(self, x: Tensor, return_features: Literal[True]) -> UNetOutput: ...

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | UNetOutput:
        """Logits, or with ``return_features`` a :class:`UNetOutput` from the same single pass.

        Args:
            x: (B, in_channels, H, W) with H and W divisible by ``self.divisor`` (16 for five levels).
            return_features: also return the bottleneck and decoder features and, with
                ``deep_supervision``, the per-level head logits. Methods that train the deep heads
                must ask for them (the plain call skips the heads, so they get no gradient there).

        Raises:
            ValueError: the spatial size is not divisible by ``self.divisor``.
        """
        if x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by {self.divisor} "
                             f"({len(self.features) - 1} down-samplings); resize or pad it")
        skips: list[Tensor] = []
        h = x
        for level in self.encoder:
            h = level(h)
            skips.append(h)
        features = [h]
        for stage, skip in zip(self.decoder, reversed(skips[:-1])):
            h = stage(h, skip)
            features.append(h)
        logits = self.head(h)
        if not return_features:
            return logits
        deep = [head(f) for head, f in zip(self.deep_heads, features)] if self.deep_heads is not None else []
        return UNetOutput(logits, features, deep)

