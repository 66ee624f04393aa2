"""The construction identity as an exact polynomial identity, and that it can fail."""

import pytest
import sympy as sp

from vitconv.theory import construction
from vitconv.theory.cases import NAMED_CASES, identity_grid
from vitconv.theory.geometry import ConvGeometry


@pytest.mark.parametrize("case", identity_grid(quick=True), ids=lambda c: c.name)
def test_identity_holds(case):
    result = construction.prove_identity(case.geometry(), *case.image, case.padding_mode)
    assert result.proved, result.mismatch


def test_every_tap_appears_exactly_once():
    for case in NAMED_CASES:
        geom = case.geometry()
        taps = [(bt.out_pixel, bt.tap) for ts in construction.block_taps(geom).values()
                for bt in ts]
        assert len(taps) == len(set(taps)) == (
            geom.rows.out_patch * geom.cols.out_patch
            * geom.rows.kernel_size * geom.cols.kernel_size)


def test_identity_detects_a_misplaced_tap(monkeypatch):
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding=1)
    original = construction.symbolic_blocks

    def swapped(g, w):
        blocks = original(g, w)
        blocks[(0, 0)] = blocks[(0, 0)].copy()
        blocks[(0, 0)][0, 0], blocks[(0, 0)][0, 1] = blocks[(0, 0)][0, 1], blocks[(0, 0)][0, 0]
        return blocks

    monkeypatch.setattr(construction, "symbolic_blocks", swapped)
    result = construction.prove_identity(geom, 4, 4)
    assert not result.proved and "differs" in result.mismatch


def test_block_entries_are_single_weights():
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding=1,
                                         in_channels=2, out_channels=2, groups=2)
    w, _ = construction.symbolic_kernel(geom)
    for M in construction.symbolic_blocks(geom, w).values():
        for entry in M:
            assert entry == 0 or isinstance(entry, sp.Symbol)


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
def test_source_index_modes(mode):
    expect = {"zeros": [None, 0, 2, None], "circular": [2, 0, 2, 0],
              "reflect": [1, 0, 2, 1], "replicate": [0, 0, 2, 2]}[mode]
    assert [construction.source_index(p, 3, (1, 1), mode) for p in (-1, 0, 2, 3)] == expect
    assert construction.source_index(-2, 3, (1, 1), mode) is None  # beyond the padding
