"""Patch tokens: one flattening order, exact round trips, and the frame."""

import torch

from vitconv.numeric.patches import frame_image, patchify, unpatchify
from vitconv.theory.geometry import ConvGeometry, token_index


def test_patchify_follows_token_index():
    B, C, P = 2, 3, 2
    x = torch.arange(B * C * 4 * 6, dtype=torch.float64).reshape(B, C, 4, 6)
    tokens = patchify(x, P)
    assert tokens.shape == (B, 2, 3, P * P * C)
    for a in range(2):
        for b in range(3):
            for u in range(P):
                for v in range(P):
                    for c in range(C):
                        assert tokens[1, a, b, token_index(u, v, c, P, C)] == \
                            x[1, c, a * P + u, b * P + v]


def test_unpatchify_inverts_patchify():
    x = torch.randn(2, 5, 6, 9)
    assert torch.equal(unpatchify(patchify(x, 3), (3, 3), 5), x)


def test_unpatchify_rectangular_patches():
    tokens = torch.randn(1, 2, 3, 2 * 1 * 4)
    assert unpatchify(tokens, (2, 1), 4).shape == (1, 4, 4, 3)


def test_frame_zero_padding_is_zero_tokens():
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding=1)
    x = torch.randn(1, 1, 4, 4)
    framed, rows, cols = frame_image(x, geom, "zeros")
    assert (rows.frame_lo, rows.frame_hi, cols.frame_lo, cols.frame_hi) == (1, 1, 1, 1)
    assert framed.shape == (1, 1, 8, 8)
    assert torch.equal(framed[..., 2:6, 2:6], x)
    framed[..., 2:6, 2:6] = 0
    assert not framed.any()


def test_frame_keeps_mode_padding_then_zeros():
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding=1)
    x = torch.randn(1, 1, 4, 4)
    framed, _, _ = frame_image(x, geom, "circular")
    assert torch.equal(framed[0, 0, 1, 2:6], x[0, 0, -1])  # one row of circular padding
    assert not framed[0, 0, 0].any()                        # then zeros to the token border
