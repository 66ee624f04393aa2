"""Networks and the exact transfer (docs/theory.md §3.6)."""

import math

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
             "phase2_random": "AttentionMixer", "vit": "_SelfAttention", "convit": "GPSA"}
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


# --- ConViT's gated positional self-attention ---------------------------------------------

def _interior_queries(grid: int, margin: int) -> list[tuple[int, int]]:
    return [(y, x) for y in range(margin, grid - margin) for x in range(margin, grid - margin)]


@pytest.mark.parametrize("heads", [4, 9])
def test_gpsa_local_initialisation_attends_where_the_paper_says(heads):
    """d'Ascoli et al. (2021), local init: head h's positional attention from query i is
    exp(-s |r - delta_h|^2) / Z over the keys at offset r = pos_j - pos_i, delta_h a
    k x k square of centres; so its mode is the key(s) nearest delta_h (one key for
    integer centres, the 2x2 block around a half-integer centre). Gates start at
    sigmoid(1) positional, the value projection at the identity."""
    from vitconv.numeric.train.models import GPSA, head_centres

    grid, strength = 7, 1.0
    attn = GPSA(heads * 8, heads, grid, strength).double()
    k = int(heads**0.5)
    centres = head_centres(heads)
    assert sorted(centres) == sorted((a - (k - 1) / 2, b - (k - 1) / 2)
                                     for a in range(k) for b in range(k))
    positional = attn.positional()                                      # (H, N, N)
    assert torch.allclose(positional.sum(-1), torch.ones(heads, grid * grid, dtype=torch.double))
    for h, (dy, dx) in enumerate(centres):
        for qy, qx in _interior_queries(grid, 2):
            row = positional[h, qy * grid + qx].reshape(grid, grid)
            ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
            expect = torch.exp(-strength * ((ys - qy - dy) ** 2 + (xs - qx - dx) ** 2)).double()
            assert torch.allclose(row, expect / expect.sum(), atol=1e-12)
            top = {(int(y), int(x)) for y, x in (row == row.max()).nonzero()}
            nearest = {(qy + oy, qx + ox) for oy in {math.floor(dy), math.ceil(dy)}
                       for ox in {math.floor(dx), math.ceil(dx)}}
            assert top == nearest, (h, (dy, dx), top)
    assert torch.allclose(torch.sigmoid(attn.gating), torch.full((heads,), 1 / (1 + math.e**-1),
                                                                dtype=torch.double))
    assert torch.equal(attn.v.weight, torch.eye(heads * 8, dtype=torch.double))


def test_gpsa_orientation_matches_convit_head_order():
    """ConViT's code: head ``h1 + k h2`` gets weights (x: 2 (h2 - c), y: 2 (h1 - c), -1); a
    head centred one row below the query must put its mode one row (not one column) down."""
    from vitconv.numeric.train.models import GPSA

    attn = GPSA(18, 9, 5, locality_strength=3.0)
    for h1 in range(3):
        for h2 in range(3):
            w = attn.pos_proj.weight[h1 + 3 * h2]
            assert w.tolist() == pytest.approx([3.0 * 2 * (h2 - 1), 3.0 * 2 * (h1 - 1), -3.0])
    down = attn.positional()[2 + 3 * 1, 2 * 5 + 2]   # h1 = 2 (dy = +1), h2 = 1 (dx = 0)
    assert int(down.argmax()) == 3 * 5 + 2


def test_gpsa_mixes_content_and_position_by_its_gate():
    """With zero queries and keys the content attention is uniform, so each head's
    attention is (1 - g) / N + g * positional exactly; a gate of -inf is pure content."""
    from vitconv.numeric.train.models import GPSA

    torch.manual_seed(0)
    attn = GPSA(32, 4, 4).double()
    x = torch.randn(2, 16, 32, dtype=torch.double)
    with torch.no_grad():
        attn.qk.weight.zero_()
        g = torch.sigmoid(attn.gating).view(1, -1, 1, 1)
        expect = (1 - g) / 16 + g * attn.positional()
        assert torch.allclose(attn.attention(x), expect.expand(2, -1, -1, -1), atol=1e-14)
        attn.gating.fill_(-float("inf"))
        assert torch.allclose(attn.attention(x), torch.full((2, 4, 16, 16), 1 / 16,
                                                            dtype=torch.double))
    out = attn(x)
    assert out.shape == x.shape


def test_gpsa_refuses_heads_it_cannot_centre():
    from vitconv.numeric.train.models import GPSA

    with pytest.raises(ValueError, match="square number of heads"):
        GPSA(24, 6, 4)
    with pytest.raises(ValueError, match="gpsa_heads"):
        NetConfig(channels=4, gpsa_heads=2)
