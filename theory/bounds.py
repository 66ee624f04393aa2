"""Head-count bounds (docs/theory.md §3.3): the construction's count and the rank lower
bound ``rho``.

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

import sympy as sp

from vitconv.theory.construction import group_input_channels
from vitconv.theory.exact_rank import RankCertificate, exact_rank
from vitconv.theory.geometry import AxisGeometry, ConvGeometry

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


# The exact rank is fraction-free elimination on big integers: beyond this many entries of
# the merged span matrix it would take minutes (a 121 x 576 matrix took 71 s on 2 cores).
EXACT_RANK_BUDGET = 20_000


def pixel_rho(geom: ConvGeometry) -> int | None:
    """The generic ``rho`` of pixel tokens in closed form (docs/theory.md §3.3, proved for
    all parameters): each tap has a block of its own, the ``C_in C_out / g`` entries of a
    tap are distinct indeterminates, so ``rho = min(#taps, C_in C_out / g)``. ``None`` if
    ``geom`` is not on pixel tokens."""
    if geom.patch_size != 1:
        return None
    taps = geom.rows.kernel_size * geom.cols.kernel_size
    return min(taps, geom.in_channels * geom.out_channels // geom.groups)


def span_size(geom: ConvGeometry) -> int:
    """Entries of the merged span matrix whose exact rank :func:`generic_rank` computes."""
    E = len(realised_differences(geom.rows)) * len(realised_differences(geom.cols))
    return geom.num_heads * E * geom.in_channels * geom.out_channels // geom.groups


def heads_needed(kernel_size: int | tuple[int, int], patch_size: int, *,
                 stride: int | tuple[int, int] = 1, padding: str | int | tuple = "same",
                 dilation: int | tuple[int, int] = 1) -> int:
    """Heads of the construction (docs/theory.md §3.2): the patch offsets the kernel reaches."""
    return ConvGeometry.from_conv_params(kernel_size=kernel_size, patch_size=patch_size,
                                         stride=stride, padding=padding,
                                         dilation=dilation).num_heads


def heads_lower_bound(kernel_size: int | tuple[int, int], patch_size: int,
                      in_channels: int = 1, out_channels: int = 1, *,
                      stride: int | tuple[int, int] = 1, padding: str | int | tuple = "same",
                      dilation: int | tuple[int, int] = 1, groups: int = 1,
                      seed: int = 0) -> RankBound:
    """Generic ``rho``: no MHSA with positions in the scores only and fewer heads equals a
    generic convolution of this shape (docs/theory.md §3.3). Exact rank at a random integer kernel;
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

    from vitconv.theory.construction import symbolic_kernel

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


def row_geometry(row: RhoRow) -> ConvGeometry:
    """The geometry of one row of the ``rho`` table."""
    return table_geometry(row.kernel_size, row.patch_size, row.in_channels, row.out_channels,
                          dilation=row.dilation, stride=row.stride)


def table_geometry(kernel_size: int, patch_size: int, in_channels: int = 1,
                   out_channels: int = 1, *, dilation: int = 1, stride: int = 1
                   ) -> ConvGeometry:
    """A shape of the ``rho`` tables: 'same' padding for stride 1, else
    ``dilation*(K-1)//2``."""
    padding = "same" if stride == 1 else dilation * (kernel_size - 1) // 2
    return ConvGeometry.from_conv_params(
        kernel_size=kernel_size, patch_size=patch_size, stride=stride, padding=padding,
        dilation=dilation, in_channels=in_channels, out_channels=out_channels)


def full_block_rows(geom: ConvGeometry, weights: Weights) -> list[list]:
    """Rows ``vec(M_delta)`` with every entry, built by ``vitconv.theory.construction.
    symbolic_blocks`` (a code path independent of :func:`span_rows`'s merged columns)."""
    from vitconv.theory.construction import symbolic_blocks

    blocks = symbolic_blocks(geom, weights)
    return [list(blocks[delta]) for delta in geom.head_plan()]


def rho_row(kernel_size: int, patch_size: int, in_channels: int = 1, out_channels: int = 1,
            *, dilation: int = 1, stride: int = 1, seed: int = 0,
            recheck: bool = True) -> RhoRow:
    """``rho`` for one shape (:func:`table_geometry`), with its certificate rechecked by
    sympy when ``recheck``."""
    from vitconv.theory.exact_rank import verify_certificate

    geom = table_geometry(kernel_size, patch_size, in_channels, out_channels,
                          dilation=dilation, stride=stride)
    weights = random_weights(geom, seed)
    rows = span_rows(geom, weights)
    cert = exact_rank(rows)
    checked = verify_certificate(rows, cert) if recheck else False
    formula = min(geom.num_heads, (2 * patch_size - 1) ** 2 * in_channels * out_channels)
    upper = rank_upper_bound(geom)
    return RhoRow(patch_size, kernel_size, in_channels, out_channels, dilation, stride,
                  geom.num_heads, cert.rank, upper, formula, cert.rank == upper, checked)


def nine_certificate_weights(geom: ConvGeometry) -> dict:
    """The kernel of the ``rho = 9`` certificate (docs/theory.md §3.3): channel pair
    ``(0, 0)`` only, ``w[s, t] = f(p_s) f(p_t)`` with ``f(p) = 1 + 2[p = 0]`` at tap
    position ``p`` (``vitconv.theory.smt.nine_certificate_entry``), zero elsewhere."""
    def f(axis: AxisGeometry, s: int) -> int:
        return 3 if axis.taps[s] == 0 else 1

    cin_g = geom.in_channels // geom.groups
    return {(o, c, s, t): (f(geom.rows, s) * f(geom.cols, t) if o == c == 0 else 0)
            for o in range(geom.out_channels) for c in range(cin_g)
            for s in range(geom.rows.kernel_size) for t in range(geom.cols.kernel_size)}


def nine_certificate_minor(geom: ConvGeometry) -> tuple[int, int]:
    """The certificate's 9 x 9 minor computed from the code's own blocks
    (:func:`span_rows` at :func:`nine_certificate_weights`), at the columns
    ``e_h, e_w in {-(P-1), 0, P-1}`` of channel pair ``(0, 0)``, and the value the proof
    predicts, ``det3(rows)^3 * det3(cols)^3`` up to sign (``vitconv.theory.smt``). Returns
    ``(minor, predicted)``; they agree in absolute value when the blocks are as proved."""
    from sympy import Matrix

    from vitconv.theory.smt import _det3, nine_certificate_matrix

    P = geom.patch_size
    rows = span_rows(geom, nine_certificate_weights(geom))
    E_h, E_w = realised_differences(geom.rows), realised_differences(geom.cols)
    pairs = geom.in_channels * geom.out_channels // geom.groups
    wanted = (-(P - 1), 0, P - 1)
    columns = [(E_h.index(eh) * len(E_w) + E_w.index(ew)) * pairs
               for eh in wanted for ew in wanted]
    minor = int(Matrix([[row[c] for c in columns] for row in rows]).det())
    spans = [axis.span for axis in (geom.rows, geom.cols)]
    d_h, d_w = (_det3(nine_certificate_matrix(a, b, P)) for a, b in spans)
    return minor, d_h**3 * d_w**3


FLOOR_H, FLOOR_RHO, _FLOOR_I = (sp.Symbol("H", integer=True, positive=True),
                                sp.Symbol("rho", integer=True, positive=True),
                                sp.Symbol("i", integer=True, positive=True))
FLOOR_SIGMA = sp.IndexedBase("sigma")

# docs/theory.md §3.4: the relative mean-squared error no H-head MHSA can beat
# (Eckart-Young). Printed in the appendix and evaluated by :func:`approximation_floor`.
APPROXIMATION_FLOOR = (sp.Sum(FLOOR_SIGMA[_FLOOR_I] ** 2, (_FLOOR_I, FLOOR_H + 1, FLOOR_RHO))
                       / sp.Sum(FLOOR_SIGMA[_FLOOR_I] ** 2, (_FLOOR_I, 1, FLOOR_RHO)))


def approximation_floor(singular_values: list[float], heads: int) -> float:
    """:data:`APPROXIMATION_FLOOR` at ``H = heads`` and the given singular values (the
    printed formula itself, summed out by sympy; 0 from ``H = rho`` on, and for a zero
    matrix)."""
    rho = len(singular_values)
    if rho == 0 or not any(singular_values):
        return 0.0
    expr = APPROXIMATION_FLOOR.subs({FLOOR_H: min(heads, rho), FLOOR_RHO: rho}).doit()
    return float(expr.subs({FLOOR_SIGMA[i + 1]: sp.Float(v, 30)
                            for i, v in enumerate(singular_values)}))
