"""Whole networks: every Conv2d replaced, logits unchanged (published CNNs, random weights)."""

import pytest
import torch
from torch import nn

from vitconv.numeric import as_attention, convert_model, plan_conversion
from vitconv.numeric.conv_attention import ConvAttention
from vitconv.numeric.convert import choose_patch_size

pytorchcv = pytest.importorskip("pytorchcv")


def _published(name: str) -> nn.Module:
    if name == "resnet20_cifar10":
        from pytorchcv.models.resnet_cifar import resnet20_cifar10 as build
    else:
        from pytorchcv.models.resnext_cifar import resnext20_16x4d_cifar10 as build
    torch.manual_seed(0)
    return build().eval().double()


@pytest.mark.parametrize("name", ["resnet20_cifar10", "resnext20_16x4d_cifar10"])
def test_published_network_logits_match(name):
    model = _published(name)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_model(model, x)
    assert not any(isinstance(m, nn.Conv2d) for m in converted.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, ConvAttention) for m in converted.modules()) == len(convs)
    if name.startswith("resnext"):
        assert any(c.groups > 1 for c in convs)  # grouped convolutions are covered
    layers = [m for m in converted.modules() if isinstance(m, ConvAttention)]
    assert {m.attention.path() for m in layers} == {"sparse"}  # inference: one-key reads
    with torch.no_grad():
        expected, got = model(x), converted(x)
        for m in layers:
            m.execution = "dense"
        dense = converted(x)
    # float64 end to end: differences are rounding only (about 1e-14 on logits of order 1-10)
    assert (got - expected).abs().max() <= 1e-10 * expected.abs().max()
    assert (dense - expected).abs().max() <= 1e-10 * expected.abs().max()
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
    assert choose_patch_size(conv, ((6, 6),)) == 6  # 9 heads need P >= 4; only 6 divides 6
    assert choose_patch_size(conv, ((5, 5),)) == 5  # P = 5: r = 4 <= 5, 9 heads
    assert choose_patch_size(nn.Conv2d(1, 1, 9, padding=4), ((7, 7),)) == 7


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
