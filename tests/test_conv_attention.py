"""The construction theorem numerically: attention == F.conv2d == float64 reference.

Tolerances are the stated rounding bounds of ``numeric.tolerances`` (never tuned): a
comparison passes when ``max |error| / bound <= 1``.
"""

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vitconv.numeric import as_attention
from vitconv.numeric.evidence.checks import compare_case, random_conv, strict_float32
from vitconv.numeric.evidence.strategies import conv_cases
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio, conv_error_bound
from vitconv.theory.cases import NAMED_CASES, ConvCase

DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", NAMED_CASES, ids=lambda c: c.name)
def test_named_cases(case, dtype, device):
    with strict_float32():
        r = compare_case(case, dtype=dtype, device=device)
    assert r.shape_ok
    assert r.worst_ratio <= 1.0, r
    assert r.heads == case.expected_heads


@example(  # found by hypothesis: replicate padding wider than the image was refused
    case=ConvCase("replicate wider than image", 2, 1, padding=3, padding_mode="replicate",
                  grid=(1, 1)), dtype=torch.float64, batch=1, weight_seed=0)
@example(  # the smallest grid and a kernel as large as the image
    case=ConvCase("1 token", 3, 3, padding="valid", grid=(1, 1)),
    dtype=torch.float32, batch=1, weight_seed=0)
@given(case=conv_cases(), dtype=st.sampled_from(DTYPES), batch=st.integers(1, 2),
       weight_seed=st.integers(0, 2**16))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_attention_equals_conv_property(case, dtype, batch, weight_seed, device):
    with strict_float32():
        r = compare_case(case, dtype=dtype, batch=batch, seed=weight_seed, device=device)
    assert r.shape_ok, case
    assert r.worst_ratio <= 1.0, r


def test_bound_catches_a_perturbed_weight():
    """The comparison can fail: a 1e-9 relative change of the largest value weight breaks it."""
    case = NAMED_CASES[1]
    gen = torch.Generator().manual_seed(0)
    conv = random_conv(case, gen, torch.float64)
    attn = as_attention(conv, case.patch_size)
    x = torch.randn(1, case.in_channels, *case.image, generator=gen, dtype=torch.float64)
    bound = attention_error_bound(attn, conv, x) + conv_error_bound(conv, x, torch.float64)
    with torch.no_grad():
        assert comparison_ratio(attn(x), conv(x), bound) <= 1
        weight = attn.attention.value.weight.view(-1)
        weight[weight.abs().argmax()] *= 1 + 1e-9
        assert comparison_ratio(attn(x), conv(x), bound) > 1


def test_issue_example():
    conv = torch.nn.Conv2d(16, 32, 5, padding=2)
    attn = as_attention(conv, patch_size=4)
    assert attn.num_heads == 9
    x = torch.randn(2, 16, 16, 16)
    torch.testing.assert_close(attn(x), conv(x))


def test_value_widths_are_ranks_and_corners_are_narrow():
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    attn = as_attention(conv, patch_size=4)
    widths = dict(zip(attn.head_plan, attn.value_dims, strict=True))
    assert widths[(0, 0)] == 4 * 4 * 4        # centre: full rank P*P*C
    assert widths[(1, 1)] == 4                # corner: one tap per channel pair
    assert widths[(0, 1)] == 4 * 4            # edge: a column of 4 pixels
    assert attn.total_value_dim < attn.num_heads * 4 * 4 * 4


def test_finite_alpha_error_shrinks_with_alpha():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    errors = []
    with torch.no_grad():
        exact = conv(x)
        for alpha in (5.0, 10.0, 20.0):
            attn = as_attention(conv, patch_size=2, alpha=alpha)
            errors.append(float((attn(x) - exact).abs().max()))
    assert errors[0] > errors[1] > errors[2] > 0


def test_module_is_trainable_and_keeps_plan():
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    attn = as_attention(conv, 2, alpha=20.0)
    attn(torch.randn(2, 3, 4, 4)).pow(2).sum().backward()
    assert attn.attention.value.weight.grad is not None
    assert attn.head_plan == tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1))
    assert "heads=9" in repr(attn)


@pytest.mark.slow
@given(case=conv_cases(max_patch=6, max_channels_per_group=4), dtype=st.sampled_from(DTYPES),
       weight_seed=st.integers(0, 2**16))
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_attention_equals_conv_long_sweep(case, dtype, weight_seed):
    """The property over a wider space (patches up to 6, kernels up to 14): `make test-all`."""
    r = compare_case(case, dtype=dtype, seed=weight_seed)
    assert r.shape_ok and r.worst_ratio <= 1.0, r


@pytest.mark.parametrize("kwargs", [{}, {"alpha": 8.0}, {"heads": "minimal"}])
def test_an_empty_batch_is_accepted_like_the_convolution(kwargs):
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    x = torch.zeros(0, 3, 4, 4, dtype=torch.float64)
    assert as_attention(conv, 2, **kwargs)(x).shape == conv(x).shape == (0, 4, 4, 4)
