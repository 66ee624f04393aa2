"""The rank lower bound ``rho`` of a specific kernel, exactly (docs/theory.md §3.3).

A float kernel is a matrix of exact dyadic rationals; ``vitconv.theory.bounds.span_rows`` and
``vitconv.theory.exact_rank`` then give its ``rho`` over the rationals with a certificate (a
kernel with zero taps, or a dilated one, can have a much smaller ``rho`` than a generic
kernel of its shape).
"""

from __future__ import annotations

from fractions import Fraction

from torch import nn

from vitconv.numeric.convertible import check_convertible, conv_geometry
from vitconv.theory.bounds import RankBound, rank_upper_bound, span_rows
from vitconv.theory.exact_rank import exact_rank


def exact_weights(conv: nn.Conv2d) -> dict[tuple[int, int, int, int], Fraction]:
    """The kernel as exact rationals, keyed ``(o, c_local, s, t)`` as in ``theory``."""
    w = conv.weight.detach().double().cpu()
    return {(o, c, s, t): Fraction(float(w[o, c, s, t]))
            for o in range(w.shape[0]) for c in range(w.shape[1])
            for s in range(w.shape[2]) for t in range(w.shape[3])}


def kernel_rank(conv: nn.Conv2d, patch_size: int) -> RankBound:
    """``rho = dim span{M_delta}`` of this very kernel, with its certificate.

    No MHSA with positions in the scores only and fewer than ``rho`` heads equals ``conv``
    on a neighbourhood of 0 (the lower-bound theorem).
    """
    check_convertible(conv)
    geom = conv_geometry(conv, patch_size)
    cert = exact_rank(span_rows(geom, exact_weights(conv)))
    return RankBound(cert.rank, rank_upper_bound(geom), geom.num_heads, cert, seed=-1)
