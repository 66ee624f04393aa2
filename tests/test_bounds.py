"""Exact ranks, their certificates, rho and its bounds (docs/theory.md §3.3)."""

from fractions import Fraction

import pytest

from vitconv.report.bounds_text import describe
from vitconv.theory.bounds import (
    heads_lower_bound,
    heads_needed,
    rank_upper_bound,
    realised_differences,
    rho_row,
    symbolic_generic_rank,
)
from vitconv.theory.exact_rank import RankCertificate, exact_rank, verify_certificate
from vitconv.theory.geometry import AxisGeometry, ConvGeometry


def test_exact_rank_and_certificate():
    rows = [[1, 2, 3], [2, 4, 6], [0, 1, Fraction(1, 3)], [1, 3, Fraction(10, 3)]]
    cert = exact_rank(rows)
    assert cert.rank == 2
    assert cert.minor_det != 0
    assert verify_certificate(rows, cert)


def test_tampered_certificates_fail():
    rows = [[1, 2, 3], [2, 4, 6], [0, 1, 1]]
    cert = exact_rank(rows)
    r, coefficients = cert.combinations[0]
    wrong = RankCertificate(cert.rank, cert.pivot_rows, cert.pivot_cols, cert.minor_det,
                            ((r, tuple(c + 1 for c in coefficients)),))
    assert not verify_certificate(rows, wrong)
    claims_three = RankCertificate(3, (0, 1, 2), (0, 1, 2), Fraction(1), ())
    assert not verify_certificate(rows, claims_three)  # the 3x3 minor is singular


def test_rank_zero_and_full():
    assert exact_rank([[0, 0], [0, 0]]).rank == 0
    assert verify_certificate([[0, 0], [0, 0]], exact_rank([[0, 0], [0, 0]]))
    cert = exact_rank([[2, 0], [0, 3]])
    assert cert.rank == 2 and cert.minor_det == 6


def test_heads_api():
    assert heads_needed(5, 4) == 9 and heads_needed(7, 2) == 25 and heads_needed(3, 1) == 9
    assert heads_lower_bound(3, 2).rank == 9
    assert heads_lower_bound(7, 2).rank == 9            # 9, not 25: r > P
    assert heads_lower_bound(3, 1, 3, 3).rank == 9      # pixels: min(K^2, C_in C_out)
    assert heads_lower_bound(5, 1, 2, 3).rank == 6
    assert heads_lower_bound(5, 1, 2, 3).certified


@pytest.mark.parametrize(("K", "P", "cin", "cout", "rho"), [
    (3, 2, 1, 1, 9), (5, 2, 1, 1, 9), (5, 3, 2, 2, 9), (7, 2, 1, 1, 9), (9, 2, 2, 1, 18),
    (3, 1, 1, 1, 1), (3, 1, 2, 4, 8), (3, 1, 3, 4, 9), (1, 2, 1, 1, 1),
])
def test_rho_matches_unified_formula_with_stride_and_dilation_one(K, P, cin, cout, rho):
    row = rho_row(K, P, cin, cout)
    assert row.rho == rho == row.issue_formula
    assert row.certified and row.certificate_checked


def test_dilation_counterexample_is_exact():
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding="same",
                                         dilation=2)
    assert realised_differences(geom.rows) == (0,)       # every tap lands at u' = u
    assert symbolic_generic_rank(geom) == rank_upper_bound(geom) == 1
    strict = ConvGeometry.from_conv_params(kernel_size=2, patch_size=2, padding="same",
                                           dilation=2, out_channels=2)
    assert symbolic_generic_rank(strict) == 7 < rank_upper_bound(strict) == 8


def test_realised_differences_span_for_dilation_one():
    axis = AxisGeometry(5, 3, pad_lo=2, pad_hi=2)
    assert realised_differences(axis) == tuple(range(-2, 3))


def test_bounds_text_mentions_both_counts():
    text = "\n".join(describe(5, 2, 3, 8))
    assert "construction: 9 heads" in text and "construction: 25 heads" in text
    assert "lower bound:  24 heads" in text and "offset lemma" in text


def test_head_counts_with_dilation_stride_and_groups():
    from vitconv.theory.bounds import heads_needed, pixel_rho
    from vitconv.theory.geometry import ConvGeometry

    assert heads_needed(5, 2, dilation=2) == 25       # dilation <= P: the whole interval
    assert heads_needed(3, 2, dilation=5) == 25       # dilation > P: skips offsets (not 49)
    assert heads_needed(3, 4, stride=2, padding=1) == 4
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=1, in_channels=4,
                                         out_channels=4, groups=2)
    assert pixel_rho(geom) == min(9, 4 * 4 // 2)


def test_exact_rank_small_cases():
    from fractions import Fraction

    from vitconv.theory.exact_rank import exact_rank, verify_certificate

    assert exact_rank([[1, 0], [0, 1]]).rank == 2
    assert exact_rank([]).rank == 0
    half = exact_rank([[Fraction(1, 2)]])
    assert half.rank == 1 and half.minor_det == Fraction(1, 2)
    zero = exact_rank([[0, 0], [0, 0]])
    assert zero.rank == 0 and verify_certificate([[0, 0], [0, 0]], zero)
    rows = [[1, 2], [2, 4]]
    cert = exact_rank(rows)
    partial = type(cert)(cert.rank, cert.pivot_rows, cert.pivot_cols, cert.minor_det, ())
    assert verify_certificate(rows, cert) and not verify_certificate(rows, partial)


def test_generic_rank_is_reproducible_and_records_its_shape():
    from vitconv.theory.bounds import generic_rank, rank_upper_bound, rho_row, table_geometry

    geom = table_geometry(3, 2, 2, 3)
    assert generic_rank(geom).certificate == generic_rank(geom).certificate
    row = rho_row(3, 2, 2, 3)
    assert (row.patch_size, row.kernel_size, row.in_channels, row.out_channels) == (2, 3, 2, 3)
    assert row.upper == rank_upper_bound(geom) and table_geometry(3, 2).in_channels == 1
