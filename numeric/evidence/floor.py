"""The approximation floor (docs/theory.md §3.4): how close ``H < rho`` heads can get.

For iid standard Gaussian tokens, an interior output of a linear map with blocks ``N_delta``
has expected squared error ``sum_delta ||M_delta - N_delta||_F^2`` against the convolution,
whose expected squared (bias-free) output is ``sum_delta ||M_delta||_F^2``. Any MHSA of the
standard form is, in the small-signal limit, the linear map with
``N_delta = sum_h A^h_{q,q+delta}(0) W^h`` (the Jacobian lemma): the matrix with rows
``vec(N_delta)`` has rank ``<= H``, so by Eckart-Young its relative error is at least
``floor(H) = sum_{i>H} sigma_i^2 / sum_i sigma_i^2``, ``sigma`` the singular values of the
matrix with rows ``vec(M_delta)``.

:func:`train_imitator` trains MHSAs with ``H`` heads to imitate a convolution and measures
that relative error exactly from the trained layer's Jacobian at 0 (:func:`small_signal_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.blocks import block_matrices
from vitconv.numeric.conv_attention import ConvAttention
from vitconv.numeric.convertible import conv_geometry
from vitconv.numeric.evidence.jacobian import autograd_jacobian
from vitconv.theory.bounds import approximation_floor


def span_matrix(conv: nn.Conv2d, patch_size: int) -> tuple[tuple, torch.Tensor]:
    """The plan's offsets and the float64 matrix with rows ``vec(M_delta)``."""
    geom = conv_geometry(conv, patch_size)
    blocks = block_matrices(conv.weight.detach().to(torch.float64).cpu(), geom)
    offsets = geom.head_plan()
    return offsets, torch.stack([blocks[d].reshape(-1) for d in offsets])


def floor_curve(conv: nn.Conv2d, patch_size: int) -> list[float]:
    """``floor(H)`` (``vitconv.theory.bounds.approximation_floor``) for
    ``H = 0, 1, ..., #offsets``."""
    _, Mat = span_matrix(conv, patch_size)
    sigma = torch.linalg.svdvals(Mat).tolist()
    return [approximation_floor(sigma, H) for H in range(Mat.shape[0] + 1)]


def nonnegative_rank_one_error(conv: nn.Conv2d, patch_size: int) -> float:
    """The best relative error of ONE content-free head: ``min over a >= 0, W`` of
    ``||Mat - a vec(W)^T||^2 / ||Mat||^2``; the floor ``floor(1)`` drops the sign constraint.

    For fixed ``a`` the best ``W`` leaves ``||Mat||^2 - a^T G a / a^T a`` (``G = Mat Mat^T``),
    so the optimum is the largest top eigenvalue of a principal submatrix ``G_S`` whose top
    eigenvector has one sign (then it is a non-negative ``a`` supported on ``S``); every
    support is tried (the plan has few offsets).
    """
    from itertools import combinations

    _, Mat = span_matrix(conv, patch_size)
    G = Mat @ Mat.T
    n, best = G.shape[0], 0.0
    if n > 16:
        raise ValueError(f"{n} offsets: too many supports to enumerate")
    for size in range(1, n + 1):
        for S in combinations(range(n), size):
            values, vectors = torch.linalg.eigh(G[list(S)][:, list(S)])
            top = vectors[:, -1]
            if (top >= -1e-12).all() or (top <= 1e-12).all():
                best = max(best, float(values[-1]))
    return 1.0 - best / float(G.trace())


def small_signal_error(model: ConvAttention, conv: nn.Conv2d, grid: int) -> float:
    """Exact relative MSE of ``model``'s linearisation at 0, for the centre query of a
    ``grid x grid`` token image with iid standard Gaussian tokens (frame tokens are zero
    padding, not inputs): ``sum_k ||J_k - M_{k-q}||^2 / sum_delta ||M_delta||^2``."""
    geom = model.geometry
    P = geom.patch_size
    rows, cols = geom.rows.grid(grid * P), geom.cols.grid(grid * P)
    framed = (rows.framed_tokens, cols.framed_tokens)
    centre = (grid // 2, grid // 2)
    window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
    J = autograd_jacobian(model.attention, framed, centre, window).detach()  # (Nk, d_in, d_out)
    blocks = block_matrices(conv.weight.detach().to(torch.float64).cpu(), geom)
    error, total = 0.0, sum(float((M**2).sum()) for M in blocks.values())
    for a in range(grid):
        for b in range(grid):
            k = (a + rows.frame_lo) * framed[1] + (b + cols.frame_lo)
            target = blocks.get((a - centre[0], b - centre[1]))
            diff = J[k] - (target if target is not None else 0.0)
            error += float((diff**2).sum())
    return error / total


@dataclass(frozen=True)
class Imitation:
    """One trained imitator: heads, its exact small-signal error, the floor, and the loss."""

    heads: int
    small_signal_error: float
    floor: float
    final_loss: float
    steps: int


def _train_once(conv: nn.Conv2d, patch_size: int, heads: int, steps: int, grid: int,
                batch: int, scale: float, lr: float, seed: int) -> tuple[ConvAttention, float]:
    torch.manual_seed(seed)
    geom = conv_geometry(conv, patch_size)
    span = grid + 2  # offsets reach across the framed grid: no clipping
    model = ConvAttention(geom, conv.padding_mode, [geom.token_dim_in] * heads,
                          key_dim=geom.token_dim_in, offset_range=((-span, span), (-span, span)),
                          dtype=torch.float64)
    model.check_input = False
    with torch.no_grad():  # break the symmetry between heads and between offsets
        model.attention.rel_bias.normal_(0.0, 1.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    gen = torch.Generator().manual_seed(seed)
    size = grid * patch_size
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        x = scale * torch.randn(batch, conv.in_channels, size, size, generator=gen,
                                dtype=torch.float64)
        with torch.no_grad():
            y = conv(x)
        loss = ((model(x) - y) ** 2).mean() / (y**2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return model, float(loss.detach())


def train_imitator(conv: nn.Conv2d, patch_size: int, heads: int, *, steps: int = 600,
                   grid: int = 3, batch: int = 32, scale: float = 1e-2, lr: float = 3e-2,
                   seed: int = 0, restarts: int = 1) -> Imitation:
    """Train MHSAs with ``heads`` heads (all parameters, content-dependent scores, a bias
    table over the whole grid) to imitate ``conv`` on inputs of standard deviation
    ``scale`` (the small-signal regime), relative mean-squared error as loss, Adam with a
    cosine schedule. Of ``restarts`` runs the one with the lowest final training loss is
    kept (small ``H`` has poor local minima: one head stuck on the centre offset)."""
    conv = conv.double().eval()
    runs = [_train_once(conv, patch_size, heads, steps, grid, batch, scale, lr, seed + r)
            for r in range(restarts)]
    model, loss = min(runs, key=lambda run: run[1])
    floors = floor_curve(conv, patch_size)
    floor = floors[heads] if heads < len(floors) else 0.0
    return Imitation(heads, small_signal_error(model, conv, grid), floor, loss, steps)
