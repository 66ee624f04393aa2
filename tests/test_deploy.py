"""Converted modules go where modules go: ``torch.compile(fullgraph=True)``,
``torch.export`` and ``torch.jit.trace``, each compared with the eager module.

Which input checks hold where (README, "Deploying a converted network"): eager raises
``ValueError``; compile and export keep the NaN/inf check and the mask check as in-graph
assertions (``RuntimeError``); ``jit.trace`` drops assertions."""

import warnings

import pytest
import torch
from torch import nn

from vitconv import as_attention, convert_model

# Dynamo traces the whole graph (fullgraph) whatever the backend; aot_eager also traces
# the backward, without the minutes a C++ compile takes on 2 cores.
BACKEND = "aot_eager"


def _layer(**kwargs):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 5, padding=2)
    return conv, as_attention(conv, 2, **kwargs).eval(), torch.randn(2, 4, 8, 8)


def _network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 5, padding=2, groups=8), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    return net, convert_model(net, x).eval(), x


CASES = {"layer": lambda: _layer()[1:], "network": lambda: _network()[1:]}


@pytest.mark.parametrize("what", CASES)
def test_compile_fullgraph_matches_eager(what):
    module, x = CASES[what]()
    with torch.no_grad():
        expected = module(x)
        got = torch.compile(module, fullgraph=True, backend=BACKEND)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("what", CASES)
def test_export_runs_and_matches_eager(what):
    module, x = CASES[what]()
    program = torch.export.export(module, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), module(x), rtol=0, atol=0)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="contains NaN or inf"):
        program.module()(nan)  # the input check survives export, as an assertion


@pytest.mark.parametrize("what", CASES)
def test_jit_trace_matches_eager(what):
    module, x = CASES[what]()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates trace
        # Shape arithmetic is fixed at trace time, and trace says so for every Python int
        # it reads from a shape: expected for a trace of one input size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (x,))
        torch.testing.assert_close(traced(x), module(x), rtol=0, atol=0)


def test_a_compiled_layer_refuses_a_mask_it_was_not_traced_with():
    """The graph reads each head's key at the offsets known when it was traced; if the mask
    is edited afterwards, the in-graph assertion fails instead of a silent wrong answer."""
    _, attn, x = _layer()
    compiled = torch.compile(attn, fullgraph=True, backend=BACKEND)
    with torch.no_grad():
        compiled(x)
        att = attn.attention
        first = att.known_targets[0]
        other = att.known_targets[1]
        (lo_h, _), (lo_w, _) = att.offset_range
        att.rel_mask[0, first[0] - lo_h, first[1] - lo_w] = False
        att.rel_mask[0, other[0] - lo_h, other[1] - lo_w] = True
        with pytest.raises(RuntimeError, match="does not keep the one offset per head"):
            compiled(x)


def test_compiled_training_of_a_finite_gap_layer():
    """The dense path (finite gap, training) compiles whole, forward and backward, and its
    gradients equal the eager ones."""
    _, attn, x = _layer(alpha=8.0)
    attn.train()
    eager = attn(x).square().sum()
    eager.backward()
    expected = attn.attention.rel_bias.grad.clone()
    attn.zero_grad()
    compiled = torch.compile(attn, fullgraph=True, backend=BACKEND)
    compiled(x).square().sum().backward()
    torch.testing.assert_close(attn.attention.rel_bias.grad, expected)


def test_a_loaded_state_dict_sets_the_offsets_a_graph_reads():
    """Loading another layer's mask refreshes known_targets (a review finding: a compiled
    or exported skeleton refused the weights it had loaded)."""
    _, soft, x = _layer(alpha=8.0)
    _, hard, _ = _layer()
    hard.load_state_dict(soft.state_dict())
    assert hard.attention.known_targets is None  # every head now attends everywhere
    with torch.no_grad():
        expected = soft(x)
        compiled = torch.compile(hard, fullgraph=True, backend=BACKEND)(x)
        exported = torch.export.export(hard, (x,)).module()(x)
    torch.testing.assert_close(compiled, expected, rtol=0, atol=0)
    torch.testing.assert_close(exported, expected, rtol=0, atol=0)


def test_training_graphs_read_the_mask_at_run_time():
    """The dense path asserts nothing about one-key offsets: a hard layer whose mask was
    opened for training compiles and trains (a review finding)."""
    _, attn, x = _layer()
    attn.train()
    with torch.no_grad():
        attn.attention.rel_mask.fill_(True)
    compiled = torch.compile(attn, fullgraph=True, backend=BACKEND)
    compiled(x).sum().backward()
    assert attn.attention.rel_bias.grad is not None


def test_offsets_given_as_arrays_compile():
    import numpy as np

    _, attn, x = _layer()
    att = attn.attention
    att.select_offsets(np.array(att.known_targets))  # numpy ints become Python ints
    assert all(isinstance(v, int) for d in att.known_targets for v in d)
    with torch.no_grad():
        torch.compile(attn, fullgraph=True, backend=BACKEND)(x)


def test_token_networks_trace_and_export_with_any_grid():
    """The experiment's converted network runs its layers on tokens (``forward_tokens``,
    the frame given as sizes that tracing makes tensors or symbols): trace it, and export
    it for any image size (a review found both refused by the frame's eager check)."""
    from vitconv.numeric.train.models import NetConfig, convert, phase1_net

    torch.manual_seed(0)
    net = convert(phase1_net(NetConfig())).eval()
    x, other = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 20, 24)
    dims = {2: 4 * torch.export.Dim("h", min=2, max=16), 3: 4 * torch.export.Dim("w", min=2,
                                                                                 max=16)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, (x,))
        torch.testing.assert_close(traced(x), net(x), rtol=0, atol=0)
        program = torch.export.export(net, (x,), dynamic_shapes=(dims,))
        torch.testing.assert_close(program.module()(other), net(other), rtol=0, atol=0)
