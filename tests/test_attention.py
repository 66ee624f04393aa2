"""The relative-bias attention module of the standard form."""

import pytest
import torch

from vitconv.numeric.attention import RelativeMultiheadAttention


def test_rows_are_probability_vectors_and_bias_moves_attention():
    torch.manual_seed(0)
    att = RelativeMultiheadAttention(6, 5, [3, 2], key_dim=4, offset_range=((-2, 2), (-2, 2)))
    x = torch.randn(2, 3, 4, 6)
    A = att.attention_weights(x)
    assert A.shape == (2, 2, 12, 12)
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 2, 12))
    with torch.no_grad():
        att.rel_bias[0, 2 + 1, 2 + 0] = 50.0  # head 0 strongly prefers the key one row below
    A = att.attention_weights(x)
    assert A[0, 0, 0, 4] > 0.99  # query (0, 0) -> key (1, 0)


def test_hard_selection_is_exact_gather():
    att = RelativeMultiheadAttention(3, 3, [3], offset_range=((-2, 2), (-2, 2))).double()
    with torch.no_grad():
        for layer in (att.query, att.key):
            layer.weight.zero_()
            layer.bias.zero_()
        att.value.weight.copy_(torch.eye(3))
        att.value.bias.zero_()
        att.output.weight.copy_(torch.eye(3))
        att.output.bias.zero_()
    att.select_offsets([(1, -1)])
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64)
    y = att(x, window=(0, 1, 3, 3))  # queries that all have a key at (+1, -1)
    assert torch.equal(y, x[:, 1:4, 0:3])


def test_finite_alpha_leaves_no_mask():
    att = RelativeMultiheadAttention(2, 2, [1, 1], offset_range=((-2, 2), (-2, 2)))
    att.select_offsets([(0, 0), (0, 1)], alpha=10.0)
    assert att.rel_mask.all()
    assert att.rel_bias[1, 2, 3] == 0 and att.rel_bias[1, 0, 0] == -10.0


def test_target_on_table_border_is_refused():
    att = RelativeMultiheadAttention(2, 2, [1])
    with pytest.raises(ValueError, match="strictly inside"):
        att.select_offsets([(1, 0)])


def test_gradients_flow_to_every_parameter():
    att = RelativeMultiheadAttention(4, 3, [2, 2], key_dim=2)
    att(torch.randn(2, 3, 3, 4)).sum().backward()
    for name, p in att.named_parameters():
        if name == "key.bias":  # adds the same score to every key of a row: softmax ignores it
            assert p.grad.abs().max() < 1e-6
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
