"""Head-count bounds (DESIGN 3.3): the construction's count and the rank lower bound ``rho``.

``rho = dim span{M_delta}`` is the rank of the matrix whose rows are ``vec(M_delta)``, one
row per offset the kernel reaches. An entry of ``M_delta`` at input pixel ``u'`` and output
pixel ``u`` is the tap at position ``delta*P + u' - stride*u``, so it depends on ``delta``
and the difference ``e = u' - stride*u`` only: columns with the same ``(e_h, e_w, c, o)``
are equal, and :func:`span_rows` keeps one of each (the rank is unchanged).

Upper bound (proved in the docstring of :func:`rank_upper_bound`):
``rho <= min(#offsets, |E_h| |E_w| C_in C_out / groups)`` where ``E`` is the set of
differences some tap realises along an axis.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from theory.construction import group_input_channels
from theory.exact_rank import RankCertificate, exact_rank
from theory.geometry import AxisGeometry, ConvGeometry

Weights = Mapping[tuple[int, int, int, int], int | Fraction]  # (o, c_local, s, t) -> value


def realised_differences(axis: AxisGeometry) -> tuple[int, ...]:
    """Differences ``e = u' - stride*u`` at which some tap sits, for some offset."""
    taps = set(axis.taps)
    lo, hi = -(axis.patch_size - axis.stride), axis.patch_size - 1
    return tuple(e for e in range(lo, hi + 1)
                 if any(d * axis.patch_size + e in taps for d in axis.offsets()))


def _tap_index(axis: AxisGeometry, position: int) -> int | None:
    """Kernel index ``s`` with ``s*dilation - pad_lo == position``, if any."""
    s, rem = divmod(position + axis.pad_lo, axis.dilation)
    return s if rem == 0 and 0 <= s < axis.kernel_size else None


def span_rows(geom: ConvGeometry, weights: Weights) -> list[list[int | Fraction]]:
    """Rows ``vec(M_delta)`` (plan order) with duplicate columns merged: one column per
    ``(e_h, e_w, c, o)`` with ``e`` a realised difference and ``c`` in the group of ``o``."""
    cin_g = geom.in_channels // geom.groups
    E_h, E_w = realised_differences(geom.rows), realised_differences(geom.cols)
    P = geom.patch_size
    rows = []
    for dh, dw in geom.head_plan():
        row: list[int | Fraction] = []
        for eh in E_h:
            s = _tap_index(geom.rows, dh * P + eh)
            for ew in E_w:
                t = _tap_index(geom.cols, dw * P + ew)
                for o in range(geom.out_channels):
                    for c in group_input_channels(o, geom):
                        row.append(weights[(o, c % cin_g, s, t)]
                                   if s is not None and t is not None else 0)
        rows.append(row)
    return rows


def rank_upper_bound(geom: ConvGeometry) -> int:
    """``min(#offsets, |E_h| |E_w| C_in C_out / groups)``, an upper bound on ``rho``.

    Proof: the matrix has one row per offset; and after merging equal columns (entries
    depend only on ``delta`` and ``(e, c, o)``) it has at most one column per realised
    ``(e_h, e_w)`` and channel pair within a group (other columns are zero).
    """
    E = len(realised_differences(geom.rows)) * len(realised_differences(geom.cols))
    pairs = geom.in_channels * geom.out_channels // geom.groups
    return min(geom.num_heads, E * pairs)


def random_weights(geom: ConvGeometry, seed: int = 0, magnitude: int = 2**31) -> dict:
    """A random integer kernel (a generic point: by Schwartz-Zippel a fixed nonzero
    minor vanishes at it with probability at most degree/magnitude)."""
    rng = random.Random(seed)
    cin_g = geom.in_channels // geom.groups
    return {(o, c, s, t): rng.randint(-magnitude, magnitude)
            for o in range(geom.out_channels) for c in range(cin_g)
            for s in range(geom.rows.kernel_size) for t in range(geom.cols.kernel_size)}


@dataclass(frozen=True)
class RankBound:
    """``rho`` at one instance, with the structural upper bound and the certificate.

    ``rank`` is exact for the instance and a lower bound on the generic ``rho``; when it
    equals ``upper`` the generic value is certified (``certified``).
    """

    rank: int
    upper: int
    offsets: int
    certificate: RankCertificate
    seed: int

    @property
    def certified(self) -> bool:
        return self.rank == self.upper


def generic_rank(geom: ConvGeometry, seed: int = 0) -> RankBound:
    """``rho`` of a random integer kernel of ``geom`` (exact), with its certificate."""
    cert = exact_rank(span_rows(geom, random_weights(geom, seed)))
    return RankBound(cert.rank, rank_upper_bound(geom), geom.num_heads, cert, seed)


def heads_needed(kernel_size: int | tuple[int, int], patch_size: int, *,
                 stride: int | tuple[int, int] = 1, padding: str | int | tuple = "same",
                 dilation: int | tuple[int, int] = 1) -> int:
    """Heads of the construction (DESIGN 3.2): the patch offsets the kernel reaches."""
    return ConvGeometry.from_conv_params(kernel_size=kernel_size, patch_size=patch_size,
                                         stride=stride, padding=padding,
                                         dilation=dilation).num_heads


def heads_lower_bound(kernel_size: int | tuple[int, int], patch_size: int,
                      in_channels: int = 1, out_channels: int = 1, *,
                      stride: int | tuple[int, int] = 1, padding: str | int | tuple = "same",
                      dilation: int | tuple[int, int] = 1, groups: int = 1,
                      seed: int = 0) -> RankBound:
    """Generic ``rho``: no MHSA with positions in the scores only and fewer heads equals a
    generic convolution of this shape (DESIGN 3.3). Exact rank at a random integer kernel;
    ``.certified`` says whether it meets the structural upper bound."""
    geom = ConvGeometry.from_conv_params(
        kernel_size=kernel_size, patch_size=patch_size, stride=stride, padding=padding,
        dilation=dilation, in_channels=in_channels, out_channels=out_channels, groups=groups)
    return generic_rank(geom, seed)


def symbolic_generic_rank(geom: ConvGeometry) -> int:
    """The generic ``rho`` exactly: the rank of the span matrix with every kernel entry a
    distinct symbol, over the field of rational functions (``sympy`` DomainMatrix over
    ``ZZ[w]``). Equal to the rank at every kernel off a proper algebraic subset."""
    import sympy as sp
    from sympy.polys.matrices import DomainMatrix

    from theory.construction import symbolic_kernel

    w, _ = symbolic_kernel(geom)
    return DomainMatrix.from_Matrix(sp.Matrix(span_rows(geom, w))).rank()


@dataclass(frozen=True)
class RhoRow:
    """One row of the ``rho`` table: shape, the construction's heads, ``rho`` and bounds."""

    patch_size: int
    kernel_size: int
    in_channels: int
    out_channels: int
    dilation: int
    stride: int
    construction_heads: int
    rho: int
    upper: int
    issue_formula: int  # min(#offsets, (2P-1)^2 C_in C_out), the unified claim under test
    certified: bool
    certificate_checked: bool

    @property
    def pixel(self) -> bool:
        return self.patch_size == 1


def rho_row(kernel_size: int, patch_size: int, in_channels: int = 1, out_channels: int = 1,
            *, dilation: int = 1, stride: int = 1, seed: int = 0,
            recheck: bool = True) -> RhoRow:
    """``rho`` for one shape ('same' padding for stride 1, else ``dilation*(K-1)//2``),
    with its certificate rechecked by sympy when ``recheck``."""
    from theory.exact_rank import verify_certificate

    padding = "same" if stride == 1 else dilation * (kernel_size - 1) // 2
    geom = ConvGeometry.from_conv_params(
        kernel_size=kernel_size, patch_size=patch_size, stride=stride, padding=padding,
        dilation=dilation, in_channels=in_channels, out_channels=out_channels)
    weights = random_weights(geom, seed)
    rows = span_rows(geom, weights)
    cert = exact_rank(rows)
    checked = verify_certificate(rows, cert) if recheck else False
    formula = min(geom.num_heads, (2 * patch_size - 1) ** 2 * in_channels * out_channels)
    upper = rank_upper_bound(geom)
    return RhoRow(patch_size, kernel_size, in_channels, out_channels, dilation, stride,
                  geom.num_heads, cert.rank, upper, formula, cert.rank == upper, checked)


def _floor_formula():
    import sympy as sp

    i, H, rho = sp.symbols("i H rho", integer=True, positive=True)
    sigma = sp.IndexedBase("sigma")
    return sp.Sum(sigma[i] ** 2, (i, H + 1, rho)) / sp.Sum(sigma[i] ** 2, (i, 1, rho))


# DESIGN 3.4: the relative mean-squared error no H-head MHSA can beat (Eckart-Young).
APPROXIMATION_FLOOR = _floor_formula()


def approximation_floor(singular_values: list[float], heads: int) -> float:
    """``sum_{i>H} sigma_i^2 / sum_i sigma_i^2`` (0 from ``H = rho`` on)."""
    energy = [s * s for s in singular_values]
    total = sum(energy)
    return sum(energy[heads:]) / total if total else 0.0
