"""The U-Net: the published parameter counts, shapes, feature taps from one pass, options, the MLDS network."""

from __future__ import annotations

import pytest
import torch
from torch.utils import _pytree

from frugalseg.config import ModelConfig
from frugalseg.nets import Norm, UNet, UNetOutput

SMALL = {"features": (4, 8, 16, 32, 64)}  # same topology as the default, fast on 2 cores

MLDS_UNET = {
    "features": (64, 128, 256, 512, 1024), "dropout": (0.0,) * 5, "norm": "batch", "upsample": "transpose",
    "act": "relu", "head": "mlp", "deep_supervision": True, "ds_hidden": 64,
}
"""MLDS ``HierarchicalUNet`` (``bilinear=False``, BN; docs/methods/mlds.md): 64-1024 channels, five deep heads."""


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def mlds_param_count(num_classes: int, in_channels: int = 1) -> int:
    """Parameters of ``Simael/mlds-unet`` ``HierarchicalUNet(bilinear=False, batchnorm)``, by hand."""

    def double_conv(i: int, o: int) -> int:  # 2 x (3x3 conv with bias + BN weight/bias)
        return (i * 9 * o + o + 2 * o) + (o * 9 * o + o + 2 * o)

    def head(i: int, hidden: int = 64) -> int:  # 1x1 conv -> BN -> ReLU -> 1x1 conv
        return (i * hidden + hidden) + 2 * hidden + (hidden * num_classes + num_classes)

    f = (64, 128, 256, 512, 1024)
    encoder = double_conv(in_channels, 64) + sum(double_conv(f[i], f[i + 1]) for i in range(4))
    decoder = sum((f[i + 1] * f[i] * 4 + f[i]) + double_conv(2 * f[i], f[i]) for i in range(4))
    return encoder + decoder + head(64) + sum(head(w) for w in f)


def test_default_is_the_ssl4mis_action_unet_parameter_count():
    assert n_params(UNet(in_channels=1, num_classes=4)) == 1_813_764
    assert n_params(UNet(in_channels=1, num_classes=4, upsample="transpose")) == 1_944_324


def test_the_defaults_are_a_default_runs_model_section():
    net, model = UNet(), ModelConfig()
    assert net.features == model.features and not net.deep_supervision
    encoder_dropout = [m.p for m in net.encoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert encoder_dropout == list(model.dropout)


def test_mlds_settings_match_the_official_network_parameter_count():
    net = UNet(num_classes=4, **MLDS_UNET)
    assert net.deep_supervision and net.features == (64, 128, 256, 512, 1024)
    assert n_params(net) == mlds_param_count(4) == 31_176_088
    out = net.eval()(torch.rand(1, 1, 32, 32), return_features=True)
    assert out.logits.shape == (1, 4, 32, 32)
    assert [d.shape[-1] for d in out.deep] == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("size", [(48, 80), (16, 16), (112, 16)])
@pytest.mark.parametrize("upsample", ["bilinear", "transpose"])
def test_logits_keep_the_input_size(size, upsample):
    net = UNet(in_channels=2, num_classes=3, upsample=upsample, **SMALL).eval()
    assert net(torch.rand(2, 2, *size)).shape == (2, 3, *size)


def test_features_and_deep_heads_come_from_one_forward_pass():
    torch.manual_seed(0)
    net = UNet(num_classes=4, deep_supervision=True, ds_hidden=8, **SMALL).eval()
    x = torch.rand(2, 1, 48, 80)
    calls = []
    net.encoder[0].register_forward_hook(lambda *_: calls.append(1))
    out = net(x, return_features=True)
    assert isinstance(out, UNetOutput) and len(calls) == 1
    # coarse to fine: bottleneck, then each decoder stage (what ACTION's representation head reads)
    assert [tuple(f.shape) for f in out.features] == [(2, 64, 3, 5), (2, 32, 6, 10), (2, 16, 12, 20),
                                                      (2, 8, 24, 40), (2, 4, 48, 80)]
    assert [tuple(d.shape) for d in out.deep] == [(2, 4, 3, 5), (2, 4, 6, 10), (2, 4, 12, 20), (2, 4, 24, 40),
                                                  (2, 4, 48, 80)]
    # the taps are the very tensors the logits were computed from
    torch.testing.assert_close(net.head(out.features[-1]), out.logits)
    torch.testing.assert_close(net(x), out.logits)


def test_without_deep_supervision_deep_is_empty_and_default_call_returns_a_tensor():
    net = UNet(**SMALL).eval()
    out = net(torch.rand(1, 1, 32, 32), return_features=True)
    assert out.deep == [] and len(out.features) == 5
    assert isinstance(net(torch.rand(1, 1, 32, 32)), torch.Tensor)


def test_every_parameter_gets_a_gradient_through_logits_and_deep_heads():
    net = UNet(deep_supervision=True, ds_hidden=8, head="mlp", head_dropout=0.1, **SMALL)
    out = net(torch.rand(2, 1, 32, 32), return_features=True)
    (out.logits.sum() + sum(d.sum() for d in out.deep)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_output_flattens_as_a_pytree_for_ddp_and_compile():
    out = UNet(deep_supervision=True, ds_hidden=8, **SMALL).eval()(torch.rand(1, 1, 16, 16), return_features=True)
    leaves, _ = _pytree.tree_flatten(out)
    assert len(leaves) == 1 + 5 + 5 and all(isinstance(t, torch.Tensor) for t in leaves)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    net = UNet(**SMALL).eval()
    x = torch.rand(2, 1, 32, 48)
    ref = net(x)
    net = net.to(memory_format=torch.channels_last)
    out = net(x.contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "group", Norm.INSTANCE])
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_norm_and_activation_options_build_and_run(norm, act):
    net = UNet(norm=norm, act=act, deep_supervision=True, ds_hidden=8, norm_groups=4, **SMALL)
    out = net(torch.rand(2, 1, 32, 32), return_features=True)
    assert out.logits.shape == (2, 4, 32, 32) and len(out.deep) == 5


def test_three_level_net():
    net = UNet(features=(4, 8, 16), dropout=(0.0, 0.1, 0.2)).eval()
    out = net(torch.rand(1, 1, 20, 12), return_features=True)
    assert out.logits.shape == (1, 4, 20, 12) and [f.shape[1] for f in out.features] == [16, 8, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "layer"}, "norm must be one of 'batch', 'group', 'instance'"),
        ({"upsample": "nearest"}, "upsample must be one of 'bilinear', 'transpose'"),
        ({"act": "gelu"}, "act must be one of 'leaky_relu', 'relu'"),
        ({"head": "linear"}, "head must be one of 'conv3x3', 'mlp'"),
        ({"dropout": (0.1, 0.1)}, "one probability per level"),
        ({"dropout": (0.0, 0.0, 0.0, 0.0, 1.0)}, r"\[0, 1\)"),
        ({"features": (16,), "dropout": (0.0,)}, "at least two"),
        ({"norm": "group", "norm_groups": 3}, "divisible by norm_groups=3"),
        ({"num_classes": 0}, "positive"),
        ({"deep_supervision": True, "ds_hidden": 0}, "ds_hidden"),
    ],
)
def test_bad_options_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


def test_input_not_divisible_by_16_raises():
    with pytest.raises(ValueError, match="divisible by 16"):
        UNet(**SMALL)(torch.rand(1, 1, 40, 32))
