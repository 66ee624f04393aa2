"""The rounding bounds come from the kernel, the input and the dtype: never from the layer."""

import dataclasses

import pytest
import torch

from vitconv.numeric import as_attention
from vitconv.numeric.blocks import block_matrices, factorize
from vitconv.numeric.conv_attention import ConstructionRecord, ConvAttention
from vitconv.numeric.evidence.checks import exact_construction_mismatch, random_conv
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio, conv_error_bound
from vitconv.theory.cases import NAMED_CASES
from vitconv.theory.construction import structural_widths


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", NAMED_CASES, ids=lambda c: c.name)
def test_factors_are_exact_and_as_wide_as_the_structure(case, dtype):
    conv = random_conv(case, torch.Generator().manual_seed(1), dtype)
    geom = case.geometry()
    blocks = block_matrices(conv.weight.detach(), geom)
    for delta, width in zip(geom.head_plan(), structural_widths(geom), strict=True):
        f = factorize(blocks[delta])
        assert torch.equal(f.value @ f.output, blocks[delta])  # exact, in the layer's dtype
        assert f.width == width  # a random kernel has no zero taps


def test_widths_never_exceed_the_structure_for_special_kernels():
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 2.0  # one nonzero tap
    attn = as_attention(conv, 2)
    # only the centre block is nonzero: the tap on the diagonal of the 4 pixels (rank 4)
    assert attn.value_dims == (0, 0, 0, 0, 4, 0, 0, 0, 0)
    assert all(w <= s for w, s in zip(attn.value_dims, structural_widths(attn.geometry),
                                       strict=True))
    assert exact_construction_mismatch(conv, attn) is None


def _layer(seed: int = 0):
    case = NAMED_CASES[1]  # 3x3 in 2x2 patches, 2 -> 2 channels
    gen = torch.Generator().manual_seed(seed)
    conv = random_conv(case, gen, torch.float64)
    x = torch.randn(2, case.in_channels, *case.image, generator=gen, dtype=torch.float64)
    return conv, as_attention(conv, case.patch_size), x


def _ratio(attn, conv, x) -> float:
    with torch.no_grad():
        bound = attention_error_bound(attn, conv, x) + conv_error_bound(conv, x, x.dtype)
        return comparison_ratio(attn(x), conv(x), bound)


def test_the_bound_ignores_the_layers_weights():
    conv, attn, x = _layer()
    before = attention_error_bound(attn, conv, x)
    with torch.no_grad():
        attn.attention.value.weight.mul_(1.05)  # a head scaled: the layer is wrong now
    assert torch.equal(attention_error_bound(attn, conv, x), before)
    assert _ratio(attn, conv, x) > 1


def test_a_relative_error_of_1e_9_fails_in_float64():
    conv, attn, x = _layer()
    assert _ratio(attn, conv, x) <= 1
    with torch.no_grad():
        attn.attention.output.weight.mul_(1 + 1e-9)
    assert _ratio(attn, conv, x) > 1


def test_a_dropped_factor_column_fails():
    """The old failure: one rank too few was hidden by a bound that grew with it."""
    conv, attn, x = _layer()
    with torch.no_grad():
        first = attn.value_dims[0]
        attn.attention.value.weight[first - 1].zero_()
    assert _ratio(attn, conv, x) > 1
    assert exact_construction_mismatch(conv, attn) is not None


def test_the_record_is_frozen_and_required():
    conv, attn, x = _layer()
    assert isinstance(attn.construction, ConstructionRecord)
    with pytest.raises(dataclasses.FrozenInstanceError):
        attn.construction.alpha = 1.0
    bare = ConvAttention(attn.geometry, "zeros", attn.value_dims, dtype=torch.float64)
    with pytest.raises(TypeError, match="no ConstructionRecord"):
        attention_error_bound(bare, conv, x)
    other = torch.nn.Conv2d(2, 2, 5, padding=2).double()
    with pytest.raises(ValueError, match="not the convolution this layer was constructed"):
        attention_error_bound(attn, other, x)
