"""One layer, two execution paths (numeric/attention.py), and grouped weights.

Both paths must compute the same function: against each other and against ``Conv2d``
within the layer's stated rounding bound (``numeric.tolerances``), in float64 and float32,
for every convolution option (the property test of tests/test_conv_attention.py runs
``compare_case``, which checks both paths on every drawn case; here the parts around it).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vitconv.numeric import as_attention
from vitconv.numeric.conv_attention import all_finite
from vitconv.numeric.evidence.checks import compare_case, random_conv
from vitconv.numeric.grouped_linear import GroupedLinear, GroupedShape
from vitconv.numeric.patches import patchify
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio
from vitconv.theory.cases import NAMED_CASES, ConvCase

DTYPES = [torch.float64, torch.float32]


def _layer(case: ConvCase, dtype=torch.float64, **kwargs):
    gen = torch.Generator().manual_seed(0)
    conv = random_conv(case, gen, dtype)
    x = torch.randn(2, case.in_channels, *case.image, generator=gen, dtype=dtype)
    return conv, as_attention(conv, case.patch_size, **kwargs), x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", NAMED_CASES, ids=lambda c: c.name)
def test_both_paths_equal_the_convolution(case, dtype):
    r = compare_case(case, dtype=dtype)
    assert r.passed, r


def test_the_path_comparison_can_fail():
    """A dense path that differed by a few rounding units of the bound would be caught:
    perturb one path's output by 3x the bound and the ratio exceeds 1."""
    conv, attn, x = _layer(NAMED_CASES[1])
    bound = attention_error_bound(attn, conv, x)
    with torch.no_grad():
        attn.execution = "dense"
        dense = attn(x)
        attn.execution = "sparse"
        sparse = attn(x)
    assert comparison_ratio(dense, sparse, 2 * bound) <= 1
    assert comparison_ratio(dense + 6 * bound, sparse, 2 * bound) > 1


def test_auto_is_sparse_for_inference_and_dense_for_training():
    _, attn, _ = _layer(NAMED_CASES[0])
    att = attn.attention
    attn.eval()
    assert att.path() == "sparse"
    attn.train()
    assert att.path() == "dense"  # the optimiser sees the exact zero gradients of the scores
    with torch.no_grad():
        assert att.path() == "sparse"
    attn.execution = "dense"
    assert att.path() == "dense"


@pytest.mark.parametrize("kwargs", [dict(alpha=20.0), dict(heads="minimal")])
def test_sparse_is_refused_where_heads_attend_to_several_keys(kwargs):
    _, attn, x = _layer(ConvCase("3x3", 2, 3, 2, 2), **kwargs)
    assert attn.attention.hard_targets() is None
    assert attn.attention.path() == "dense"
    attn.execution = "sparse"
    with pytest.raises(ValueError, match="exactly one offset"):
        attn(x)


def test_a_mask_changed_by_hand_switches_the_path():
    """The one-key decision is recomputed when the mask buffer changes in place."""
    _, attn, _ = _layer(NAMED_CASES[0])
    att = attn.attention.eval()
    assert att.hard_targets() is not None
    with torch.no_grad():
        att.rel_mask[0].fill_(True)
    assert att.hard_targets() is None
    assert att.path() == "dense"


def test_unknown_execution_is_refused():
    _, attn, _ = _layer(NAMED_CASES[0])
    with pytest.raises(ValueError, match="execution='fast' must be one of"):
        attn.execution = "fast"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", NAMED_CASES, ids=lambda c: c.name)
def test_gradients_agree_on_both_paths(case, dtype):
    """Input, value and output gradients are bitwise equal on both paths: with one-hot
    ``A^h`` the dense backward multiplies by 1 and 0 and adds exact zeros (the softmax
    gradient ``A (dA - sum A dA)`` is exactly 0), so it routes each gradient to the same
    key as the sparse path's slicing does, with no rounding."""
    _conv, attn, x = _layer(case, dtype)
    grads = {}
    for path in ("sparse", "dense"):
        attn.zero_grad()
        attn.execution = path
        xi = x.clone().requires_grad_()
        attn(xi).square().sum().backward()
        att = attn.attention
        grads[path] = (xi.grad, att.value.weight.grad.clone(), att.output.weight.grad.clone())
    for a, b in zip(grads["sparse"], grads["dense"], strict=True):
        assert torch.equal(a, b)


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 5), n_in=st.integers(1, 6), c_in=st.integers(1, 4),
       n_out=st.integers(1, 6), c_out=st.integers(1, 4), rows=st.integers(0, 3))
def test_grouped_linear_is_the_dense_block_diagonal_map(groups, n_in, c_in, n_out, c_out, rows):
    torch.manual_seed(0)
    layer = GroupedLinear(groups, GroupedShape(n_in, c_in), GroupedShape(n_out, c_out),
                          dtype=torch.float64)
    x = torch.randn(rows, 2, layer.in_features, dtype=torch.float64)
    with torch.no_grad():
        dense = nn.functional.linear(x, layer.dense_weight(), layer.bias)
        assert torch.allclose(layer(x), dense, rtol=0, atol=1e-12)
        # Zeros between groups: input channels of group g never reach outputs of another.
        W = layer.dense_weight()
        per_in = torch.arange(layer.in_features) // c_in % groups
        per_out = torch.arange(layer.out_features) // c_out % groups
        assert (W[per_out[:, None] != per_in[None, :]] == 0).all()


def test_grouped_layers_store_no_cross_group_zeros():
    """A depthwise layer's attention form grows linearly with its channels, not
    quadratically: doubling the channels doubles the value and output parameters."""
    def value_output_params(channels: int) -> int:
        conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        att = as_attention(conv, 2).attention
        return att.value.weight.numel() + att.output.weight.numel()

    assert value_output_params(256) == 2 * value_output_params(128)


def test_grouped_value_dims_must_split_over_the_groups():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    with pytest.raises(ValueError, match="multiples of the convolution's groups=2"):
        as_attention(conv, 2, value_dims=9)


@pytest.mark.parametrize("conv", [dict(in_channels=3, out_channels=5, kernel_size=5),
                                  dict(in_channels=2, out_channels=3, kernel_size=(1, 5)),
                                  dict(in_channels=2, out_channels=3, kernel_size=(3, 1),
                                       dilation=2)], ids=["5x5", "1x5", "3x1-dilated"])
def test_forward_tokens_is_forward_without_the_image_round_trip(conv):
    """Exact data (_small_ints): identical, down to one token of one image, where MKL
    would round general floats differently (it projects fewer rows at once); kernels
    whose frames differ by side (1x5: left and right only)."""
    conv = nn.Conv2d(**conv, padding="same").double()
    with torch.no_grad():
        _small_ints(conv.weight), _small_ints(conv.bias)
        attn = as_attention(conv, 4)
        for batch, side in ((2, 12), (1, 4), (2, 8)):
            x = _small_ints(torch.empty(batch, conv.in_channels, side, side,
                                        dtype=torch.float64))
            tokens = patchify(x, 4)
            assert torch.equal(attn.forward_tokens(tokens), patchify(attn(x), 4))
            assert torch.equal(attn.forward_tokens(tokens), patchify(conv(x), 4))


def test_forward_tokens_projects_the_frame_once():
    """The point of the frame argument: keys and values are projected for the grid's own
    tokens (and one zero token), not for the frame's (49 + 1 rows, not 81, per image of
    the experiment's 7x7 grid); queries for the query window only."""
    from vitconv.numeric.train.models import NetConfig, convert, phase1_net

    attention = convert(phase1_net(NetConfig()), alpha=16.0).blocks[0].mixer.attention
    rows = {}

    def count(name):
        return lambda module, args, out: rows.setdefault(name, []).append(
            args[0].numel() // args[0].shape[-1])
    layers = {n: getattr(attention.attention, n) for n in ("query", "key", "value")}
    hooks = [m.register_forward_hook(count(n)) for n, m in layers.items()]
    attention.forward_tokens(torch.randn(3, 7, 7, 128))
    for h in hooks:
        h.remove()
    assert rows == {"query": [3 * 49], "key": [3 * 49, 1], "value": [3 * 49, 1]}
    strided = ConvCase("strided", 4, 3, 2, 2, stride=2, padding=1, padding_mode="reflect",
                       grid=(2, 2))
    _, attn, x = _layer(strided)
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        attn.forward_tokens(patchify(x, 4))


def test_all_finite_is_exact_when_the_sum_overflows():
    big = torch.full((4,), 3e38, dtype=torch.float32)  # finite entries, infinite sum
    assert all_finite(big)
    assert not all_finite(torch.tensor([1.0, float("nan")]))
    assert not all_finite(torch.tensor([float("inf"), -float("inf")]))
    assert all_finite(torch.zeros(0))


def test_the_inference_bias_cache_follows_the_table():
    """Dense inference keeps the bias between calls; an in-place change of the table (an
    optimiser step, load_state_dict) must be seen at once."""
    _, attn, x = _layer(ConvCase("3x3", 2, 3, 2, 2), alpha=4.0)
    attn.eval()
    with torch.no_grad():
        before = attn(x)
        attn.attention.rel_bias.mul_(0.5)
        after = attn(x)
    fresh = attn(x)  # gradients enabled: the bias is rebuilt, not cached
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh.detach())


def test_bench_layer_times_both_paths_and_their_yardsticks():
    """The bench's layer row (report/bench.py) runs both paths and reports ratios; its
    numbers are measured, never asserted, but its outputs must agree with the conv."""
    from vitconv.report.bench import LAYERS, bench_layer

    row = bench_layer(LAYERS[1], reps=1, seed=0, device=torch.device("cpu"))
    assert {"sparse_vs_conv", "compact_vs_conv", "dense_vs_sdpa", "conv_ms", "sdpa_ms"} <= set(row)
    assert row["max_abs_diff"] < 1e-3


def test_bench_training_reports_speed_and_operation_ratios():
    """The training row counts each network's floating-point operations per step (the
    compute-bound yardstick of its speed ratio) next to the steps per second."""
    from vitconv.report.bench import bench_training

    row = bench_training(reps=1, device=torch.device("cpu"), seed=0)
    assert row["converted_path"] == ["dense"]
    for net in ("converted", "vit", "cnn"):
        assert row[f"{net}_steps_per_s"] > 0 and row[f"{net}_gflop_per_step"] > 0
    assert row["converted_vs_vit_flops"] == pytest.approx(
        row["vit_gflop_per_step"] / row["converted_gflop_per_step"])


def test_the_bias_cache_sees_writes_that_keep_the_version_counter():
    """A fused optimiser step and ``.data`` writes do not advance ``_version``; the cache
    compares values instead (a review finding)."""
    _, attn, x = _layer(ConvCase("3x3", 2, 3, 2, 2), alpha=4.0)
    att = attn.attention.eval()
    with torch.no_grad():
        attn(x)
        att.rel_bias.data.mul_(0.25)
        cached = attn(x)
        att._clear_caches()
        fresh = attn(x)
    assert torch.equal(cached, fresh)
    with torch.no_grad():
        att.rel_mask.data[0].fill_(True)  # head 0 now attends everywhere
    assert att.hard_targets() is None


def test_a_layer_built_under_inference_mode_runs():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    with torch.inference_mode():
        attn = as_attention(conv, 2)
        x = torch.randn(1, 2, 4, 4)
        assert torch.allclose(attn(x), conv(x), atol=1e-5)


def test_caches_are_not_pickled_or_copied():
    import copy
    import io

    _, attn, x = _layer(ConvCase("3x3", 2, 3, 2, 2), alpha=4.0)
    with torch.no_grad():
        attn.eval()(x)
    assert attn.attention._tables
    clone = copy.deepcopy(attn)
    assert not clone.attention._tables and clone.attention._bias_cache[2] is None
    buffer = io.BytesIO()
    torch.save(attn, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(x), attn(x))


def test_a_grouped_layer_of_zero_width_is_the_bias():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    with torch.no_grad():
        conv.weight.zero_()
    attn = as_attention(conv, 2)
    assert sum(attn.value_dims) == 0
    x = torch.randn(1, 4, 4, 4)
    for path in ("sparse", "dense"):
        attn.execution = path
        with torch.no_grad():
            assert torch.equal(attn(x), conv(x))


def test_forward_tokens_refuses_bad_tokens_clearly():
    case = ConvCase("same", 4, 5, 3, 3, padding="same", grid=(3, 3))
    _, attn, x = _layer(case)
    tokens = patchify(x, 4)
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, Gh, Gw, 48\)"):
        attn.forward_tokens(tokens[..., :8])
    with pytest.raises(ValueError, match="NaN or inf"):
        attn.forward_tokens(tokens.clone().fill_(float("nan")))


def test_grouped_weights_refuse_another_dtype():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    attn = as_attention(conv, 1)
    with pytest.raises(ValueError, match=r"x has dtype torch\.float64 but the layer is"):
        attn(torch.randn(1, 4, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"input dtype torch\.float64 differs"):
        attn.attention.value(torch.randn(3, 4, dtype=torch.float64))


FRAMED_LAYERS = {  # each kind of projection a layer can hold
    "linear": (dict(out_channels=4), {}),
    "grouped": (dict(out_channels=4, groups=2), {}),
    "gather": (dict(out_channels=6), {"compact": True}),             # value: a Selection
    "scatter": (dict(out_channels=4, groups=2), {"compact": True}),  # output: a Selection
}


def _small_ints(t: torch.Tensor) -> torch.Tensor:
    """Entries in -3..3: every product and sum of the projections is then exact in float32
    and float64, so equal functions give identical numbers however a BLAS groups the
    rows (with general floats MKL rounds a row differently below about 8 rows)."""
    return t.copy_(torch.randint(-3, 4, t.shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", FRAMED_LAYERS)
def test_a_zero_frame_is_the_zero_padded_grid(kind, dtype):
    """``frame=`` projects the interior only and fills the frame with the projection of a
    zero token: identical to padding with zero tokens (exact data, see _small_ints), for
    every kind of projection, on both paths, with query windows on the interior (the
    queries' shortcut), in the frame and across it, frames with empty sides, an empty batch;
    gradients too on the sparse path, where no softmax rounds. Every bias is random, so a
    frame filled with zeros, or cut off from the gradient, would show."""
    conv_kw, attn_kw = FRAMED_LAYERS[kind]
    torch.manual_seed(0)
    conv = nn.Conv2d(4, kernel_size=3, padding=1, **conv_kw).to(dtype)
    attn = as_attention(conv, 2, **attn_kw).attention
    with torch.no_grad():
        for name, p in attn.named_parameters():
            if name != "rel_bias":
                _small_ints(p)
    d_in = attn.value.in_features
    windows = {"sparse": [(1, 2, 3, 4), (1, 2, 1, 1), (2, 3, 2, 1), (1, 1, 3, 5), (1, 3, 2, 4)],
               "dense": [(1, 2, 3, 4), (2, 3, 1, 2), (0, 0, 6, 7), (2, 0, 4, 3), (0, 0, 1, 1),
                         (0, 1, 3, 3), (1, 1, 2, 7)]}
    # (top, bottom, left, right): all four sides differ in some frame, so no two are confused
    frames = {"sparse": [(1, 2, 2, 1), (1, 1, 1, 1), (1, 2, 3, 1)],
              "dense": [(1, 2, 2, 1), (0, 3, 3, 0), (1, 0, 2, 3), (0, 1, 0, 0)]}
    for path in ("sparse", "dense"):
        attn.execution = path
        edge = 1 if path == "sparse" else 0  # a hard head's key must be on the grid
        if path == "dense":  # every head attends everywhere: the frame's queries have keys
            with torch.no_grad():
                attn.rel_mask.fill_(True)
                _small_ints(attn.rel_bias)
        for frame in frames[path]:
            rows, cols = frame[0] + 3 + frame[1], frame[2] + 4 + frame[3]
            shown = [(top, left, h, w) for top, left, h, w in windows[path]
                     if min(top, left) >= edge and top + h <= rows - edge
                     and left + w <= cols - edge]
            assert shown, frame  # every frame is tried with some window
            for batch in (2, 0):
                x = _small_ints(torch.empty(batch, 3, 4, d_in, dtype=dtype))
                padded = F.pad(x, (0, 0, frame[2], frame[3], frame[0], frame[1]))
                for window in shown:
                    got, expected = _with_grads(attn, x, padded, window, frame, path)
                    for a, b in zip(got, expected, strict=True):
                        assert torch.equal(a, b), (path, frame, window, batch)
    assert kind != "gather" or type(attn.value).__name__ == "Selection"
    assert kind != "scatter" or type(attn.output).__name__ == "Selection"


def _with_grads(attn, x, padded, window, frame, path):
    """The output of both calls and, on the sparse path, every parameter's gradient under
    an integer upstream gradient."""
    results = []
    for args in ((x, window, frame), (padded, window)):
        attn.zero_grad(set_to_none=True)
        y = attn(*args)
        out = [y.detach()]
        if path == "sparse":
            torch.manual_seed(1)
            (y * _small_ints(torch.empty_like(y))).sum().backward()
            out += [p.grad for p in attn.parameters() if p.grad is not None]
        results.append(out)
    return results


@pytest.mark.parametrize("frame", [(1, 1, 1), (1, -1, 0, 0), (1, 1.0, 0, 0), (True, 0, 0, 0),
                                   None, 1, "1111"])
def test_a_bad_frame_is_refused_clearly(frame):
    attn = as_attention(nn.Conv2d(2, 2, 3, padding=1), 2).attention
    with pytest.raises(ValueError, match=r"frame=.* must be 4 non-negative ints"):
        attn(torch.randn(1, 2, 2, 8), None, frame)


@pytest.mark.parametrize("window", [(0, 0, 5, 1), (3, 0, 2, 2), (0, 0, 1, 5), (0, 3, 1, 2),
                                    (0, 0, -1, 2), (0, 0, 2)])
def test_a_window_off_the_grid_is_refused_clearly(window):
    attn = as_attention(nn.Conv2d(2, 2, 3, padding=1), 2).attention
    with pytest.raises(ValueError, match=r"window=.* (must be 4 non-negative|leaves the)"):
        attn(torch.randn(1, 2, 2, 8), window, (1, 1, 1, 1))


def test_integer_frames_of_any_integer_type_are_taken():
    attn = as_attention(nn.Conv2d(2, 2, 3, padding=1), 2).attention
    x = torch.randn(1, 2, 2, 8)
    frame = (np.int64(1), torch.tensor(1), 1, 1)
    assert torch.equal(attn(x, (1, 1, 2, 2), frame), attn(x, (1, 1, 2, 2), (1, 1, 1, 1)))
