"""Geometry: head plans, offsets, frames; the single source of truth for numeric code."""

import pytest

from vitconv.theory.cases import NAMED_CASES
from vitconv.theory.geometry import (
    AxisGeometry,
    ConvGeometry,
    offset_interval,
    resolve_padding,
    token_index,
)


@pytest.mark.parametrize("case", NAMED_CASES, ids=lambda c: c.name)
def test_named_case_head_counts(case):
    assert case.geometry().num_heads == case.expected_heads


@pytest.mark.parametrize(("kernel", "patch", "heads"), [
    (3, 1, 9), (5, 1, 25), (7, 1, 49),            # pixel tokens: K*K
    (3, 2, 9), (5, 2, 9), (7, 2, 25), (9, 2, 25),  # r <= P: 9; r > P: (2 ceil(r/P) + 1)^2
    (3, 4, 9), (9, 4, 9), (11, 4, 25),
])
def test_same_padding_head_counts(kernel, patch, heads):
    geom = ConvGeometry.from_conv_params(kernel_size=kernel, patch_size=patch, padding="same")
    r = (kernel - 1) // 2
    assert geom.num_heads == heads == (2 * -(-r // patch) + 1) ** 2


def test_issue_examples():
    assert ConvGeometry.from_conv_params(kernel_size=5, patch_size=4, padding=2,
                                         in_channels=16, out_channels=32).num_heads == 9
    assert ConvGeometry.from_conv_params(kernel_size=3, patch_size=4, stride=2,
                                         padding=1).num_heads == 4


def test_offsets_are_interval_for_contiguous_taps():
    for P in range(1, 5):
        for K in range(1, 9):
            for pad in range(K):
                axis = AxisGeometry(K, P, pad_lo=pad, pad_hi=pad)
                lo, hi = axis.interval()
                assert axis.offsets() == tuple(range(lo, hi + 1))


def test_dilation_beyond_patch_skips_offsets():
    axis = AxisGeometry(3, 2, dilation=5, pad_lo=5, pad_hi=5)
    assert axis.offsets() == (-3, -2, 0, 2, 3)
    assert axis.interval() == (-3, 3)


def test_offset_interval_formula():
    assert offset_interval(1, 1, 2) == (-1, 1)
    assert offset_interval(3, 3, 2) == (-2, 2)
    assert offset_interval(0, 0, 4, stride=2) == (0, 0)


def test_placements_cover_every_output_tap_once():
    axis = AxisGeometry(5, 3, dilation=2, stride=3, pad_lo=4, pad_hi=4)
    pairs = [(p.out_pos, p.tap) for p in axis.placements()]
    assert sorted(pairs) == [(u, s) for u in range(axis.out_patch) for s in range(5)]
    for p in axis.placements():
        assert p.offset * 3 + p.in_pos == p.out_pos * 3 + 2 * p.tap - 4
        assert 0 <= p.in_pos < 3


def test_grid_frame_covers_every_key():
    axis = AxisGeometry(3, 2, pad_lo=3, pad_hi=3)  # large padding: output longer than input
    g = axis.grid(4)
    assert g.out_length == 8 and g.query_tokens == 4
    offsets = axis.offsets()
    for A in range(g.query_tokens):
        for d in offsets:
            assert 0 <= A + d + g.frame_lo < g.framed_tokens


def test_resolve_padding_same_matches_pytorch_rule():
    # nn.Conv2d pads total//2 before and the rest after
    assert resolve_padding("same", (4, 3), (1, 2), (1, 1)) == ((1, 2), (2, 2))
    assert resolve_padding("valid", (3, 3), (1, 1), (2, 2)) == ((0, 0), (0, 0))
    assert resolve_padding((1, 2), (3, 5), (1, 1), (1, 1)) == ((1, 1), (2, 2))


def test_token_index_is_channel_fastest():
    assert [token_index(0, 0, c, 2, 3) for c in range(3)] == [0, 1, 2]
    assert token_index(0, 1, 0, 2, 3) == 3
    assert token_index(1, 0, 0, 2, 3) == 6


def test_sizes_must_be_ints_and_grids_must_fit():
    """Gaps a generic mutation tool found: type checks, interval with stride, grid refusals."""
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        AxisGeometry(3.0, 2)
    with pytest.raises(TypeError, match="patch_size must be an int"):
        AxisGeometry(3, True)
    assert AxisGeometry(3, 4, stride=2, pad_lo=1, pad_hi=1).interval() == (-1, 0)
    with pytest.raises(ValueError, match="length=5 must be a positive multiple"):
        AxisGeometry(3, 2).grid(5)
    with pytest.raises(ValueError, match="too small for a kernel of size 5"):
        AxisGeometry(5, 2).grid(4)  # output length 0
    grid = AxisGeometry(1, 2).grid(4)
    assert (grid.frame_lo, grid.frame_hi, grid.query_tokens) == (0, 0, 2)
