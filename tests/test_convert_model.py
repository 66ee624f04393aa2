"""Whole networks: every Conv2d replaced, logits unchanged (published CNNs, random weights)."""

import math

import pytest
import torch
from torch import nn

from vitconv.numeric import as_attention, convert_model, plan_conversion
from vitconv.numeric.conv_attention import ConvAttention
from vitconv.numeric.convert import choose_patch_size
from vitconv.numeric.convertible import conv_geometry
from vitconv.theory.construction import structural_weights

pytorchcv = pytest.importorskip("pytorchcv")


def _published(name: str) -> nn.Module:
    if name == "resnet20_cifar10":
        from pytorchcv.models.resnet_cifar import resnet20_cifar10 as build
    else:
        from pytorchcv.models.resnext_cifar import resnext20_16x4d_cifar10 as build
    torch.manual_seed(0)
    return build().eval().double()


@pytest.mark.parametrize("name", ["resnet20_cifar10", "resnext20_16x4d_cifar10"])
def test_published_network_logits_match(name, device):
    model = _published(name).to(device)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64).to(device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_model(model, x)
    dense_weights = convert_model(model, x, compact=False)
    assert not any(isinstance(m, nn.Conv2d) for m in converted.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, ConvAttention) for m in converted.modules()) == len(convs)
    if name.startswith("resnext"):
        assert any(c.groups > 1 for c in convs)  # grouped convolutions are covered
    layers = [m for m in converted.modules() if isinstance(m, ConvAttention)]
    assert {m.attention.path() for m in layers} == {"sparse"}  # inference: one-key reads
    # Hard masks: every layer stores one factor of every head as indices.
    assert all(m.construction.selection in ("output", "value") for m in layers)
    with torch.no_grad():
        expected, got, uncompact = model(x), converted(x), dense_weights(x)
        for m in layers:
            m.execution = "dense"
        dense = converted(x)
    # float64 end to end: differences are rounding only (about 1e-14 on logits of order 1-10)
    for y in (got, dense, uncompact):
        assert (y - expected).abs().max() <= 1e-10 * expected.abs().max()
    # The copy shared the original's convolutions only while converting.
    assert not any(m is c for m in converted.modules() for c in convs)
    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k])


def test_patch_choice_rule():
    x = torch.zeros(1, 3, 32, 32)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 5, padding=2),
                          nn.Conv2d(8, 8, 7, stride=2, padding=3), nn.Conv2d(8, 8, 1))
    plans = {p.name: p for p in plan_conversion(model, x)}
    assert (plans["0"].patch_size, plans["0"].num_heads) == (1, 9)   # pixel tokens suffice
    assert (plans["1"].patch_size, plans["1"].num_heads) == (2, 9)   # 5x5 needs P >= 2
    assert (plans["2"].patch_size, plans["2"].num_heads) == (4, 9)   # multiple of stride 2
    assert plans["3"].input_sizes == ((16, 16),)
    overridden = {p.name: p for p in plan_conversion(model, x, {"1": 4})}
    assert overridden["1"].patch_size == 4 and overridden["0"].patch_size == 1


def test_patch_choice_falls_back_to_fewest_heads():
    conv = nn.Conv2d(1, 1, 9, padding=4)
    heads_only = math.inf  # weights never decide
    assert choose_patch_size(conv, ((6, 6),), max_weight_ratio=heads_only) == 6  # only 6
    assert choose_patch_size(conv, ((5, 5),), max_weight_ratio=heads_only) == 5  # r = 4 <= 5
    assert choose_patch_size(conv, ((7, 7),), max_weight_ratio=heads_only) == 7


def test_patch_choice_weighs_weights_against_heads():
    # A 5x5 depthwise kernel on a 7x7 map (efficientnet_b0's last stage): 9 heads need
    # P = 7, whose blocks store 237x the kernel; 25 heads at P = 1 store it once.
    depthwise = nn.Conv2d(16, 16, 5, padding=2, groups=16)
    assert choose_patch_size(depthwise, ((7, 7),)) == 1
    assert choose_patch_size(depthwise, ((14, 14),)) == 2           # 9 heads at 5.8x
    assert choose_patch_size(depthwise, ((7, 7),), max_weight_ratio=math.inf) == 7
    # 9x9 on a 6x6 map: P = 6 stores 87x; of the affordable sizes, 2 and 3 need the fewest
    # heads (25), the smaller wins.
    assert choose_patch_size(nn.Conv2d(1, 1, 9, padding=4), ((6, 6),)) == 2
    # None affordable: the fewest stored entries (3x3 stride 2 at P = 2 stores 1.8x).
    strided = nn.Conv2d(4, 4, 3, stride=2, padding=1)
    assert choose_patch_size(strided, ((8, 8),), max_weight_ratio=1) == 2
    plan = plan_conversion(nn.Sequential(depthwise), torch.zeros(1, 16, 7, 7))[0]
    assert (plan.patch_size, plan.num_heads, plan.weights) == (1, 25, depthwise.weight.numel())
    for bad in (0.5, float("nan"), True, "8"):
        with pytest.raises(ValueError, match="max_weight_ratio"):
            plan_conversion(nn.Sequential(depthwise), torch.zeros(1, 16, 7, 7),
                            max_weight_ratio=bad)


@pytest.mark.parametrize("spec", [
    dict(in_channels=3, out_channels=5, kernel_size=3, padding=1),
    dict(in_channels=6, out_channels=4, kernel_size=(5, 3), stride=2, padding=1, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=7, stride=2, padding=3, dilation=1),
    dict(in_channels=4, out_channels=8, kernel_size=3, dilation=2, padding=2, groups=4),
    dict(in_channels=8, out_channels=4, kernel_size=1, stride=2),
    # the heads' narrower factors on different sides:
    dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1),
])
@pytest.mark.parametrize("P", [2, 4])
@pytest.mark.parametrize("compact", [True, False])
def test_structural_weights_count_what_the_layer_stores(spec, P, compact):
    """The patch choice's cost is what ``as_attention`` stores in its value and output
    weights (a stored selection is indices, not weights), for a generic kernel, counted
    from the geometry alone; ``convert_model``'s plan records the same count."""
    conv = nn.Conv2d(**spec)
    layer = as_attention(conv, P, compact=compact)
    stored = sum(p.numel() for name, p in layer.attention.named_parameters()
                 if name in ("value.weight", "output.weight"))
    assert structural_weights(conv_geometry(conv, P), compact) == stored
    x = torch.zeros(1, conv.in_channels, 2 * P, 2 * P)
    plan = convert_model(conv, x, patch_size=P, compact=compact).conversion_plan[0]
    assert plan.weights == stored


def test_shared_convolution_stays_shared_and_model_may_be_a_conv():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    converted = convert_model(model, torch.zeros(1, 2, 4, 4))
    assert converted[0] is converted[2]
    single = convert_model(conv, torch.zeros(1, 2, 4, 4))
    assert isinstance(single, ConvAttention)


def test_training_mode_preserved_and_batchnorm_untouched():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)).train()
    stats = model[1].running_mean.clone()
    converted = convert_model(model, torch.randn(4, 1, 4, 4))
    assert converted.training and converted[0].training
    assert torch.equal(model[1].running_mean, stats)


def test_layer_not_reached_needs_explicit_patch_size():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="'unused' did not run"):
        convert_model(Unused(), torch.zeros(1, 1, 4, 4))
    converted = convert_model(Unused(), torch.zeros(1, 1, 4, 4), {"unused": 2})
    assert converted.unused.patch_size == 2


def test_subclass_without_own_forward_is_converted():
    class Tagged(nn.Conv2d):
        pass

    conv = Tagged(1, 1, 3, padding=1)
    x = torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(as_attention(conv, 2)(x), conv(x))


def test_the_trainable_form_gets_the_compact_forms_patches():
    """The patch choice weighs the compact form whatever form is built: a 7x7 layer keeps
    its 9 heads at P = 4 under alpha= (whose dense form stores 65x the kernel, past the
    default ratio), and each plan counts the entries its own form stores."""
    model = nn.Sequential(nn.Conv2d(8, 8, 7, padding=3))
    x = torch.zeros(1, 8, 16, 16)
    hard = convert_model(model, x).conversion_plan[0]
    trainable = convert_model(model, x, alpha=20.0).conversion_plan[0]
    assert (hard.patch_size, hard.num_heads) == (4, 9)
    assert (trainable.patch_size, trainable.num_heads) == (4, 9)
    geometry = conv_geometry(model[0], 4)
    assert hard.weights == structural_weights(geometry)
    assert trainable.weights == structural_weights(geometry, compact=False) > 64 * 8 * 8 * 49
