"""The Jacobian lemma (docs/theory.md §3.3) on the real attention module, through autograd.

For a query token ``q`` of :class:`~numeric.attention.RelativeMultiheadAttention`,
:func:`autograd_jacobian` differentiates the module's own forward at ``X = 0`` and
:func:`lemma_jacobian` evaluates ``sum_h A^h_{qk}(0) W_V^h W_O^h`` from its weights. The
stacked ``vec(J_{qk})`` over keys ``k`` has rank at most ``H`` (the lower-bound theorem's
engine): :func:`jacobian_singular_values` exposes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import jacrev

from vitconv.numeric.attention import RelativeMultiheadAttention, Window
from vitconv.numeric.grouped_linear import weight_matrix
from vitconv.numeric.tolerances import gamma


def head_products(att: RelativeMultiheadAttention) -> list[torch.Tensor]:
    """``W_V^h W_O^h`` per head, each ``(d_in, d_out)``."""
    values = weight_matrix(att.value).split(att.value_dims, dim=0)     # (d_v^h, d_in)
    outputs = weight_matrix(att.output).split(att.value_dims, dim=1)   # (d_out, d_v^h)
    return [v.T @ o.T for v, o in zip(values, outputs, strict=True)]


def autograd_jacobian(att: RelativeMultiheadAttention, grid: tuple[int, int],
                      query: tuple[int, int], window: Window | None = None) -> torch.Tensor:
    """``d y_q / d x_k`` at ``X = 0`` for every key ``k``: ``(Nk, d_in, d_out)``.

    ``query`` is counted inside ``window`` (the query tokens; default: the whole grid).
    """
    d_in = att.value.in_features
    zero = torch.zeros(1, *grid, d_in, dtype=att.value.bias.dtype,
                       device=att.value.bias.device)

    def y_q(x: torch.Tensor) -> torch.Tensor:
        return att(x, window)[0, query[0], query[1]]             # (d_out,)

    J = jacrev(y_q)(zero)                                        # (d_out, 1, Gh, Gw, d_in)
    return J.reshape(J.shape[0], -1, d_in).permute(1, 2, 0)      # (Nk, d_in, d_out)


def lemma_jacobian(att: RelativeMultiheadAttention, grid: tuple[int, int],
                   query: tuple[int, int]) -> torch.Tensor:
    """``sum_h A^h_{qk}(0) W_V^h W_O^h`` for every key ``k``: ``(Nk, d_in, d_out)``."""
    d_in = att.value.in_features
    zero = torch.zeros(1, *grid, d_in, dtype=att.value.bias.dtype,
                       device=att.value.bias.device)
    A = att.attention_weights(zero)[0, :, query[0] * grid[1] + query[1]]   # (H, Nk)
    return sum(A[h][:, None, None] * W for h, W in enumerate(head_products(att)))


@dataclass(frozen=True)
class LemmaCheck:
    """Worst ``|autograd - lemma| / bound`` over the Jacobian's entries."""

    max_error: float   # at the element of worst ratio
    bound: float
    keys: int
    ratio: float       # max over elements of |autograd - lemma| / bound

    @property
    def passed(self) -> bool:
        return self.ratio <= 1.0


@torch.no_grad()
def jacobian_error_bound(att: RelativeMultiheadAttention, grid: tuple[int, int],
           query: tuple[int, int]) -> torch.Tensor:
    """Elementwise first-order rounding bound for the Jacobian at 0: ``(Nk, d_in, d_out)``.

    Autograd's backward pass has two paths. Through the values it computes
    ``A_qk W_V W_O``. Through the softmax it computes ``A_k' (g - sum_m A_m g)`` with
    ``g = (b_V W_O)_j`` the same for every key (all values equal ``b_V`` at 0): exactly 0,
    but in floating point up to ``gamma * A_k' |g|``, then multiplied by the score
    derivative ``ds_qk'/dx_k = [k'=k] b_Q W_K^T/sqrt(d_k) + [q=k] W_Q b_K^T/sqrt(d_k)``.
    Hence, per head, ``S = A_qk |W_V||W_O| + |b_V||W_O| (A_qk |b_Q||W_K|^T + [q=k]
    |W_Q||b_K|^T)/sqrt(d_k)`` and both sides are within ``gamma_n * S`` of the exact value,
    ``n = Nk + d_in + d_v + d_k + 8`` (a conservative count of the roundings along the
    longest chain: score, softmax normalisation, value and output products).
    """
    d_in = att.value.in_features
    zero = torch.zeros(1, *grid, d_in, dtype=att.value.bias.dtype,
                       device=att.value.bias.device)
    row = query[0] * grid[1] + query[1]
    A = att.attention_weights(zero)[0, :, row]                          # (H, Nk)
    dk = att.key_dim
    WQ = att.query.weight.abs().split(dk, 0)                            # (d_k, d_in) per head
    WK = att.key.weight.abs().split(dk, 0)
    bQ, bK = att.query.bias.abs().split(dk), att.key.bias.abs().split(dk)
    values = weight_matrix(att.value).abs().split(att.value_dims, 0)
    outputs = weight_matrix(att.output).abs().split(att.value_dims, 1)
    biases = att.value.bias.abs().split(att.value_dims)
    S = torch.zeros(A.shape[1], d_in, att.output.out_features, dtype=A.dtype, device=A.device)
    for h in range(att.num_heads):
        S += A[h][:, None, None] * (values[h].T @ outputs[h].T)
        g = biases[h] @ outputs[h].T                                    # (d_out,)
        score = A[h][:, None] * (bQ[h] @ WK[h])[None, :]               # (Nk, d_in)
        score[row] += WQ[h].T @ bK[h]
        S += score[:, :, None] * g[None, None, :] / dk ** 0.5
    n = A.shape[1] + d_in + max(att.value_dims) + dk + 8
    return gamma(n, A.dtype) * S


def check_lemma(att: RelativeMultiheadAttention, grid: tuple[int, int],
                query: tuple[int, int]) -> LemmaCheck:
    """Compare the autograd Jacobian at 0 with the lemma for one query, elementwise."""
    auto = autograd_jacobian(att, grid, query).detach()
    with torch.no_grad():
        err = (auto - lemma_jacobian(att, grid, query)).abs()
    bound = jacobian_error_bound(att, grid, query)
    worst = int((err / bound).argmax())
    return LemmaCheck(float(err.flatten()[worst]), float(bound.flatten()[worst]),
                      grid[0] * grid[1], float((err / bound).max()))


def jacobian_singular_values(att: RelativeMultiheadAttention, grid: tuple[int, int],
                             query: tuple[int, int]) -> torch.Tensor:
    """Singular values of the matrix with rows ``vec(J_{qk})`` (at most ``H`` nonzero)."""
    J = autograd_jacobian(att, grid, query)
    return torch.linalg.svdvals(J.reshape(J.shape[0], -1))


def random_mhsa(d_in: int, d_out: int, heads: int, value_dim: int, key_dim: int,
                grid: tuple[int, int], generator: torch.Generator,
                dtype: torch.dtype = torch.float64) -> RelativeMultiheadAttention:
    """A content-dependent MHSA with every parameter standard normal (biases included),
    and a relative-bias table covering the whole grid."""
    span = ((-(grid[0] - 1), grid[0] - 1), (-(grid[1] - 1), grid[1] - 1))
    att = RelativeMultiheadAttention(d_in, d_out, [value_dim] * heads, key_dim, span,
                                     dtype=dtype)
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype))
    return att


@dataclass(frozen=True)
class RankCheck:
    """Singular values ``sigma_H`` and ``sigma_{H+1}`` of the stacked Jacobian, and the
    tolerance ``sigma_{H+1}`` must stay below for ``rank <= H`` to hold."""

    heads: int
    sigma_h: float
    sigma_next: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.sigma_next <= self.tolerance


def check_rank(att: RelativeMultiheadAttention, grid: tuple[int, int],
               query: tuple[int, int]) -> RankCheck:
    """``rank [vec J_qk]_k <= H``: the computed matrix is the exact one (rank <= H) plus an
    error ``E`` with ``|E| <= bound`` elementwise, so ``sigma_{H+1} <= ||E||_2 <= ||bound||_F``
    (Weyl), plus the SVD's own backward error ``max(shape) * eps * sigma_1``."""
    J = autograd_jacobian(att, grid, query).detach()
    flat = J.reshape(J.shape[0], -1).to(torch.float64)
    s = torch.linalg.svdvals(flat)
    H = att.num_heads
    eps = torch.finfo(J.dtype).eps
    rounding = float(torch.linalg.norm(jacobian_error_bound(att, grid, query)))
    tol = rounding + max(flat.shape) * eps * float(s[0])
    return RankCheck(H, float(s[H - 1]), float(s[H]) if len(s) > H else 0.0, tol)
