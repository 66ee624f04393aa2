"""Networks and the exact transfer (docs/theory.md §3.6)."""

import pytest
import torch

import vitconv.numeric.train.transfer as transfer
from vitconv.numeric.train.data import mnist_split
from vitconv.numeric.train.models import ARMS, NetConfig, build, convert, phase1_net, phase2_net
from vitconv.numeric.train.transfer import transfer_check

SMALL = NetConfig(channels=4, depth=2)


def test_every_arm_is_a_trainable_classifier_of_its_kind():
    """Each arm maps images to finite logits that depend on the image, every parameter
    gets a gradient, and its token mixers are of the arm's kind."""
    from vitconv.numeric.conv_attention import ConvAttention

    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    kinds = {"two_phase": "ConvMixer", "phase1_only": "ConvMixer",
             "phase2_random": "AttentionMixer", "vit": "_SelfAttention"}
    for arm in ARMS:
        net = build(arm, SMALL)
        logits = net(x)
        assert logits.shape == (3, 10) and torch.isfinite(logits).all()
        assert not torch.allclose(logits[0], logits[1])
        logits.sum().backward()
        silent = [n for n, p in net.named_parameters() if p.grad is None]
        assert not silent, (arm, silent)
        modules = {type(m).__name__ for m in net.modules()}
        assert kinds[arm] in modules, (arm, modules)
        if arm == "phase2_random":
            assert all(m.construction is None for m in net.modules()
                       if isinstance(m, ConvAttention))


def test_convert_is_exact_on_random_and_real_images():
    torch.manual_seed(0)
    net = phase1_net(SMALL)
    assert transfer_check(net, torch.randn(4, 1, 28, 28)).passed
    images = torch.from_numpy(mnist_split().test_images[:6].astype("float32") / 255)
    check = transfer_check(net, images)
    assert check.passed and check.max_logit_difference < 1e-12


def test_transfer_check_catches_a_wrong_conversion(monkeypatch):
    def wrong(phase1, alpha=None):
        net = convert(phase1, alpha)
        with torch.no_grad():
            net.blocks[0].mixer.attention.attention.output.bias.add_(1e-9)
        return net

    monkeypatch.setattr(transfer, "convert", wrong)
    assert not transfer_check(phase1_net(SMALL), torch.randn(2, 1, 28, 28)).passed


def test_finite_alpha_is_close_and_trainable():
    torch.manual_seed(1)
    net = phase1_net(SMALL).double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    errors = []
    with torch.no_grad():
        for alpha in (4.0, 12.0, 24.0):
            errors.append(float((convert(net, alpha)(x) - net(x)).abs().max()))
    assert errors[0] > errors[1] > errors[2] > 0
    soft = convert(net, 8.0)
    soft(x).sum().backward()
    assert soft.blocks[0].mixer.attention.attention.rel_bias.grad.abs().sum() > 0


def test_converted_and_random_phase2_share_a_shape():
    converted, fresh = convert(phase1_net(SMALL), 8.0), phase2_net(SMALL)
    shapes = {k: v.shape for k, v in converted.state_dict().items()}
    assert shapes == {k: v.shape for k, v in fresh.state_dict().items()}
    fresh.load_state_dict(converted.state_dict())  # what resuming phase 2 relies on


def test_convert_refuses_other_networks_and_config_checks():
    with pytest.raises(TypeError, match="phase-1 network"):
        convert(phase2_net(SMALL))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        NetConfig(image_size=30)
    with pytest.raises(ValueError, match="unknown arm"):
        build("resnet", SMALL)
