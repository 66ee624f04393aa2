"""Per-kernel minimum: rho or rho + 1 heads, with exact certificates, and exact outputs."""

from fractions import Fraction

import pytest
import torch

from vitconv.numeric import as_attention
from vitconv.numeric.minimal import minimal_plan, positivity_certificate
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio, conv_error_bound
from vitconv.proofs.theorems.lower_bound import tap_kernel
from vitconv.proofs.theorems.minimal_heads import BLUR, minimal_cases
from vitconv.theory.minimal_heads import PositivityCertificate, verify


@pytest.mark.parametrize("index", range(8))
def test_minimal_construction_equals_conv(index):
    name, conv, P, grid = minimal_cases(0)[index]
    for dtype in (torch.float64, torch.float32):
        c = conv.to(dtype)
        attn = as_attention(c, P, heads="minimal")
        x = torch.randn(2, c.in_channels, grid[0] * P, grid[1] * P, dtype=dtype)
        with torch.no_grad():
            bound = attention_error_bound(attn, c, x) + conv_error_bound(c, x, dtype)
            assert comparison_ratio(attn(x), c(x), bound) <= 1, name
        assert attn.head_plan is None and attn.num_heads <= len(attn.offsets)


def test_one_sign_kernel_needs_one_head_mixed_signs_two():
    blur = tap_kernel(3, BLUR)
    signed = tap_kernel(3, [(s, t, v * (-1) ** s) for s, t, v in BLUR])
    assert minimal_plan(blur, 1).heads == 1
    assert minimal_plan(signed, 1).heads == 2
    assert minimal_plan(signed, 1).certificate.kind == "farkas"


def test_r_greater_than_p_beats_the_plan():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 7, padding=3).double()
    plan = minimal_plan(conv, 2)
    assert plan.rank == 9 and plan.heads in (9, 10) and len(plan.offsets) == 25


def test_certificates_verify_and_tampering_fails():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    _, active, cert = positivity_certificate(conv, 1)
    from vitconv.numeric.convertible import conv_geometry
    from vitconv.numeric.rank import exact_weights
    from vitconv.theory.bounds import span_rows

    rows = span_rows(conv_geometry(conv, 1), exact_weights(conv))
    rows = [rows[i] for i in active]
    assert verify(rows, cert)
    flipped = PositivityCertificate(cert.kind, tuple(-v for v in cert.vector))
    assert not verify(rows, flipped)
    assert not verify(rows, PositivityCertificate("positive", tuple(Fraction(0) for _ in rows[0])))


def test_zero_kernel_and_sparse_kernel():
    zero = tap_kernel(3, [])
    assert minimal_plan(zero, 1).heads == 0
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    assert torch.equal(as_attention(zero, 1, heads="minimal")(x), zero(x))
    centre = tap_kernel(3, [(1, 1, -3.0)])
    assert minimal_plan(centre, 2).heads == 1


def test_minimal_arguments():
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="alpha applies to heads='plan' only"):
        as_attention(conv, 1, heads="minimal", alpha=5.0)
    with pytest.raises(ValueError, match="heads='few' must be one of"):
        as_attention(conv, 1, heads="few")
    with pytest.raises(ValueError, match="needs 2 heads even in the minimal"):
        as_attention(tap_kernel(3, [(0, 0, 1.0), (2, 2, -1.0)]), 1, heads="minimal", max_heads=1)


def test_farkas_checker_rejects_negative_or_zero_vectors():
    from vitconv.theory.minimal_heads import verify_farkas

    assert verify_farkas([[1], [-1]], [Fraction(1), Fraction(1)])
    assert not verify_farkas([[1], [1]], [Fraction(1), Fraction(-1)])
    assert not verify_farkas([[1], [-1]], [Fraction(0), Fraction(0)])


def test_minimal_record_and_the_max_heads_boundary():
    conv = tap_kernel(3, [(s, t, v * (-1) ** s) for s, t, v in BLUR])  # signed: 2 heads
    attn = as_attention(conv, 1, heads="minimal", max_heads=2)  # exactly enough: accepted
    record = attn.construction
    assert (record.heads, record.head_plan, record.alpha) == ("minimal", None, None)
    assert record.support == int((minimal_plan(conv, 1).distributions > 0).sum(1).max()) > 1
    assert record.log_range > 0 and record.value_dims == attn.value_dims
    with pytest.raises(ValueError, match="needs 2 heads even in the minimal construction"):
        as_attention(conv, 1, heads="minimal", max_heads=1)
