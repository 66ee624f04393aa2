"""The selection factor stored as indices (numeric/selection.py) and the compact layers
and networks built with it: the same function as dense weights, in fewer numbers."""

import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vitconv.numeric import as_attention, convert_model
from vitconv.numeric.blocks import factorize, offset_blocks
from vitconv.numeric.convertible import conv_geometry
from vitconv.numeric.grouped_linear import weight_matrix
from vitconv.numeric.selection import Selection
from vitconv.theory.construction import VALUE_TOUCHES, compact_costs, compact_side


@st.composite
def selections(draw):
    kind = draw(st.sampled_from(["gather", "scatter"]))
    n_in, n_out = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    length, bound = (n_out, n_in) if kind == "gather" else (n_in, n_out)
    index = draw(st.lists(st.integers(0, bound - 1), min_size=length, max_size=length))
    return Selection(n_in, n_out, torch.tensor(index, dtype=torch.long), kind,
                     dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(selections(), st.integers(0, 3))
def test_selection_is_the_linear_map_of_its_dense_weight(sel, batch):
    """Gathers copy and scatters add: F.linear with the 0/1 matrix written out by hand
    from the index (repeated targets of a scatter are summed, as two heads writing one
    output are), up to the order of summation."""
    with torch.no_grad():
        sel.bias.copy_(torch.randn(sel.out_features, dtype=torch.float64))
    x = torch.randn(batch, 2, sel.in_features, dtype=torch.float64)
    W = torch.zeros(sel.out_features, sel.in_features, dtype=torch.float64)
    for j, i in enumerate(sel.index.tolist()):
        W[(j, i) if sel.kind == "gather" else (i, j)] = 1
    assert torch.equal(weight_matrix(sel), W)
    assert torch.allclose(sel(x), F.linear(x, W, sel.bias), rtol=0, atol=1e-12)


def test_scatter_rounds_follow_a_loaded_index():
    """A scatter runs as rounds of gathers derived from ``index``; loading another index
    (and nothing else: the rounds are never saved) rederives them."""
    a = Selection(4, 2, torch.tensor([0, 0, 1, 0]), "scatter", dtype=torch.float64)
    b = Selection(4, 2, torch.tensor([1, 1, 1, 0]), "scatter", dtype=torch.float64)
    assert "rounds" not in a.state_dict()
    x = torch.randn(3, 4, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b(x), a(x))
    assert torch.equal(a(x)[:, 0], x[:, 0] + x[:, 1] + x[:, 3])  # in increasing input order


def test_selection_refuses_bad_arguments():
    with pytest.raises(ValueError, match="kind='copy' must be one of"):
        Selection(2, 2, torch.tensor([0, 1]), "copy")
    with pytest.raises(ValueError, match="1-D int64 tensor of length 3"):
        Selection(2, 3, torch.tensor([0, 1]), "gather")
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        Selection(2, 3, torch.tensor([0, 1, 2]), "gather")
    with pytest.raises(ValueError, match="1-D int64"):
        Selection(2, 2, torch.tensor([0.0, 1.0]), "scatter")
    sel = Selection(2, 1, torch.tensor([0, 0]), "scatter")
    with pytest.raises(ValueError, match=r"input dtype torch\.float64"):
        sel(torch.zeros(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="input has 3 features"):
        sel(torch.zeros(1, 3))


SPECS = {
    "3x3": dict(in_channels=4, out_channels=4, kernel_size=3, padding=1),
    "1x1 widening": dict(in_channels=3, out_channels=8, kernel_size=1),
    "depthwise 5x5": dict(in_channels=6, out_channels=6, kernel_size=5, padding=2, groups=6),
    "grouped 3x3": dict(in_channels=6, out_channels=12, kernel_size=3, padding=1, groups=3),
}


@pytest.mark.parametrize("P", [1, 2])
@pytest.mark.parametrize("name", SPECS)
def test_compact_layer_stores_the_selection_as_indices(name, P, device):
    torch.manual_seed(0)
    conv = nn.Conv2d(**SPECS[name]).double().to(device)
    dense, compact = as_attention(conv, P), as_attention(conv, P, compact=True)
    record = compact.construction
    assert record.selection in ("value", "output") and dense.construction.selection is None
    chosen = getattr(compact.attention, record.selection)
    assert isinstance(chosen, Selection)
    # The same matrices W_V^h W_O^h, so the same function; fewer numbers stored.
    for proj in ("value", "output"):
        assert torch.equal(weight_matrix(getattr(dense.attention, proj)),
                           weight_matrix(getattr(compact.attention, proj)))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(compact) < count(dense)
    x = torch.randn(2, conv.in_channels, 8, 8, dtype=torch.float64, device=device)
    for path in ("sparse", "dense"):
        compact.execution = path
        assert torch.allclose(compact(x), conv(x), rtol=0, atol=1e-12)


def test_compact_layer_round_trips_and_trains_its_other_weights():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    layer = as_attention(conv, 1, compact=True)
    x = torch.randn(2, 4, 6, 6)
    copy = pickle.loads(pickle.dumps(layer))
    skeleton = as_attention(nn.Conv2d(4, 4, 3, padding=1), 1, compact=True)
    skeleton.load_state_dict(layer.state_dict())
    assert torch.equal(copy(x), layer(x)) and torch.equal(skeleton(x), layer(x))
    assert layer.double().attention.output.index.dtype == torch.long  # indices stay ints
    layer.float().train()
    layer(x).square().sum().backward()
    att = layer.attention
    assert att.value.weight.grad is not None and att.output.bias.grad is not None
    assert [n for n, _ in att.output.named_parameters()] == ["bias"]  # the ones are fixed


def test_compact_is_refused_where_no_factor_is_a_selection():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    for kwargs in (dict(value_dims=8), dict(heads="minimal")):
        with pytest.raises(ValueError, match="compact=True applies to heads='plan'"):
            as_attention(conv, 1, compact=True, **kwargs)
    with pytest.raises(ValueError, match="compact must be a bool"):
        as_attention(conv, 1, compact="yes")



@pytest.mark.parametrize("conv, side", [
    (nn.Conv2d(16, 8, 1, stride=2), "value"),      # reads 1 pixel of 4: select the inputs
    (nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), "output"),  # narrow heads
    (nn.Conv2d(8, 8, 3, stride=2, padding=1), "value"),
    (nn.Conv2d(4, 8, 3, padding=1), "value"),       # widening: the narrower side
    (nn.Conv2d(8, 4, 3, padding=1), "output"),
])
def test_compact_side_touches_fewest_numbers(conv, side):
    """The compact side is the one whose hard-mask forward touches the fewer numbers per
    token (stored entries + VALUE_TOUCHES x width), counted here from the factorisations
    themselves, not from the geometry's formula; the layer stores what that side keeps,
    and computes the convolution on both paths."""
    torch.manual_seed(0)
    conv = conv.double()
    geometry = conv_geometry(conv, 2)
    blocks = offset_blocks(conv.weight.detach(), geometry)
    cost = {}
    for s in ("output", "value"):
        factors = [factorize(blocks[d], s) for d in geometry.head_plan()]
        stored = sum(f.kept.numel() for f in factors)
        width = conv.groups * sum(f.width for f in factors)
        cost[s] = (stored + VALUE_TOUCHES * width, stored)
        assert stored == compact_costs(geometry)[s]
    assert min(cost, key=cost.get) == side == compact_side(geometry)
    layer = as_attention(conv, 2, compact=True)
    assert layer.construction.selection == side
    assert sum(p.numel() for n, p in layer.attention.named_parameters()
               if n in ("value.weight", "output.weight")) == cost[side][1]
    x = torch.randn(2, conv.in_channels, 8, 8, dtype=torch.float64)
    for path in ("sparse", "dense"):
        layer.execution = path
        assert torch.allclose(layer(x), conv(x), rtol=0, atol=1e-12)


def test_convert_model_is_compact_for_hard_masks_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
    x = torch.randn(1, 3, 8, 8)
    hard, trainable = convert_model(model, x), convert_model(model, x, alpha=20.0)
    assert all(m.construction.selection for m in (hard[0], hard[2]))
    assert not any(m.construction.selection for m in (trainable[0], trainable[2]))
    assert convert_model(model, x, compact=False)[0].construction.selection is None
    kernel = sum(m.weight.numel() for m in (model[0], model[2]))
    stored = sum(p.numel() for n, p in hard.named_parameters()
                 if n.endswith(("value.weight", "output.weight")))
    assert stored == kernel  # at P = 1 the non-selection factors are the taps themselves
    with pytest.raises(ValueError, match="compact must be None or a bool"):
        convert_model(model, x, compact=1)


def test_convert_model_never_touches_the_original():
    """The plan runs on a copy: a forward that writes into its parameters (also through
    ``.data``), materialises lazy modules or reads a convolution's weights changes the
    copy only, and the conversion is the same."""
    class Clipping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.scale = nn.Parameter(torch.full((3,), 5.0))
            self.head = nn.LazyLinear(2)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            self.scale.data.clamp_(-1, 1)  # weight clipping, invisible to version counters
            if self.conv.weight.abs().max() > 100:  # reads a convolution's weight values:
                x = F.avg_pool2d(x, 2)              # the real ones decide the conv's input
            return self.head((self.conv(x) * self.scale[:, None, None]).flatten(1))

    torch.manual_seed(0)
    model = Clipping()
    with torch.no_grad():
        model.conv.weight[0, 0, 0, 0] = 1000.0
    x = torch.randn(1, 2, 4, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if not isinstance(v, nn.parameter.UninitializedParameter)}
    converted = convert_model(model, x)
    assert model.calls == 0 and torch.equal(model.scale, torch.full((3,), 5.0))
    assert isinstance(model.head.weight, nn.parameter.UninitializedParameter)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    # The plan read the real weights (the meta probe cannot: the full copy ran instead).
    assert converted.conversion_plan[0].input_sizes == ((2, 2),)


def test_the_jacobian_lemma_reads_compact_layers():
    """The evidence tools read a layer's matrices through ``weight_matrix``: a stored
    selection is the same ``W_V^h W_O^h`` as the dense one."""
    from vitconv.numeric.evidence.jacobian import check_lemma, head_products

    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    dense, compact = as_attention(conv, 2), as_attention(conv, 2, compact=True)
    for a, b in zip(head_products(dense.attention), head_products(compact.attention),
                    strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():  # every key allowed (softmax over the bias), so every query has one
        compact.attention.rel_mask.fill_(True)
        compact.attention.rel_bias.normal_()
    assert check_lemma(compact.attention, (4, 4), (1, 1)).passed


def test_scatter_rounds_follow_an_index_edited_in_place_or_swapped():
    sel = Selection(3, 2, torch.tensor([0, 0, 1]), "scatter", dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64)
    with torch.no_grad():
        sel.index.copy_(torch.tensor([1, 1, 1]))
    assert torch.equal(sel(x), F.linear(x, weight_matrix(sel)) + sel.bias)
    swapped = torch.func.functional_call(sel, {"index": torch.tensor([0, 1, 0])}, (x,))
    assert torch.equal(swapped[:, 0], x[:, 0] + x[:, 2])
    assert torch.equal(sel(x)[:, 1], x[:, 0] + x[:, 1] + x[:, 2])  # back to its own index
    bad = {"index": torch.tensor([0, 5, 0]), "bias": torch.zeros(2, dtype=torch.float64)}
    with pytest.raises(ValueError, match=r"index entries must lie in \[0, 2\)"):
        sel.load_state_dict(bad)
    assert torch.equal(sel.index, torch.tensor([1, 1, 1]))  # refused before any write


def test_cpu_scatter_equals_the_rounds_bitwise():
    """On the CPU a scatter runs as one index_add, elsewhere (and when traced) as rounds of
    gathers: the same sums in the same order, so the two are bitwise equal, on any number
    of threads."""
    torch.manual_seed(0)
    sel = Selection(300, 40, torch.randint(0, 40, (300,)), "scatter")
    x = torch.randn(3, 5, 300)
    padded = F.pad(x, (0, 1))
    rounds = padded.index_select(-1, sel.rounds[0])
    for k in range(1, len(sel.rounds)):
        rounds = rounds + padded.index_select(-1, sel.rounds[k])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sel(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(sel(x) - sel.bias, rounds) and torch.equal(one, sel(x))


def test_traced_scatter_runs_the_rounds_and_adds():
    """Traced (as CUDA always does) a scatter runs its own rounds of gathers: bitwise equal
    to the CPU's index_add, and every output the sum of all inputs sent to it (a round that
    overwrote instead of adding would lose all but one)."""
    torch.manual_seed(1)
    sel = Selection(200, 30, torch.randint(0, 30, (200,)), "scatter")
    assert len(sel.rounds) > 1  # some output receives several inputs
    x = torch.randn(4, 200, dtype=torch.float64)
    sel = sel.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing is deprecated, and warns of its limits
        traced = torch.jit.trace(sel, x, check_trace=False)
    assert "index_add" not in str(traced.graph) and "index_select" in str(traced.graph)
    expected = torch.zeros(4, 30, dtype=torch.float64)
    for i, j in enumerate(sel.index.tolist()):
        expected[:, j] += x[:, i]
    assert torch.equal(traced(x), sel(x))
    torch.testing.assert_close(traced(x) - sel.bias, expected, rtol=0, atol=1e-12)
