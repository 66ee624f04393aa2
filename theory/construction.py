"""The construction theorem's algebra (docs/theory.md §3.2): block matrices ``M_delta``, exactly.

A convolution acts on patch tokens (row vectors) as ``y_q = sum_delta x_{q+delta} M_delta
+ beta``. :func:`block_taps` says which kernel tap sits where in each ``M_delta``; it is
the one description that the numeric code (``vitconv.numeric.blocks``) instantiates with real
weights and that :func:`symbolic_blocks` instantiates with sympy symbols.

:func:`prove_identity` proves the identity as an exact polynomial identity (symbolic
kernel entries, bias and pixels) at every output pixel of a small instance, against
:func:`conv_by_definition`, an independent transcription of docs/theory.md §2's formula.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp

from vitconv.theory.geometry import ConvGeometry, token_index


@dataclass(frozen=True)
class BlockTap:
    """Kernel tap ``tap = (s, t)`` sits in ``M_delta`` at input pixel ``in_pixel = (u', v')``
    of the key patch and output pixel ``out_pixel = (u, v)`` of the query's output patch."""

    in_pixel: tuple[int, int]
    out_pixel: tuple[int, int]
    tap: tuple[int, int]


def block_taps(geom: ConvGeometry) -> dict[tuple[int, int], tuple[BlockTap, ...]]:
    """For each head offset ``delta`` of the plan, the taps in ``M_delta`` (row-major keys).

    Every (output pixel, tap) pair appears exactly once over all offsets, so every entry of
    every ``M_delta`` is a single kernel weight or zero; the channel block at each position
    is ``w[o, c, s, t]`` for ``c`` in the group of ``o`` (zero across groups).
    """
    taps: dict[tuple[int, int], list[BlockTap]] = {d: [] for d in geom.head_plan()}
    for pr in geom.rows.placements():
        for pc in geom.cols.placements():
            taps[(pr.offset, pc.offset)].append(
                BlockTap((pr.in_pos, pc.in_pos), (pr.out_pos, pc.out_pos), (pr.tap, pc.tap))
            )
    return {d: tuple(v) for d, v in taps.items()}


def structural_widths(geom: ConvGeometry) -> tuple[int, ...]:
    """Value width per head of the plan for a generic kernel (docs/theory.md §3.2):
    ``min(#nonzero rows, #nonzero columns)`` of ``M_delta``, i.e. the input pixels some tap
    reads times ``C_in`` against the output pixels times ``C_out`` (:func:`head_extents`).
    A specific kernel (zero taps or channels) never needs more; it is what
    ``vitconv.numeric.blocks.factorize`` uses unless told the side (compact layers).
    At least the rank of ``M_delta``, not always equal to it (dilated kernels can have
    blocks of lower rank)."""
    return tuple(geom.groups * min(reads, writes) for reads, writes in head_extents(geom))


def head_extents(geom: ConvGeometry) -> tuple[tuple[int, int], ...]:
    """Per head of the plan and channel group, ``(reads, writes)``: the entries of the
    group's input token that some tap of ``M_delta`` reads (input pixels times
    ``C_in/groups``) and of its output token that some tap writes (output pixels times
    ``C_out/groups``): the nonzero rows and columns of the block for a generic kernel.

    The taps of :func:`block_taps` are a product of the two axes' placements, so the pixels
    an offset reads (writes) are a product too: the count costs ``O(P K)``, not ``O(P^2 K^2)``.
    """
    cin, cout = geom.in_channels // geom.groups, geom.out_channels // geom.groups

    def per_offset(axis) -> dict[int, tuple[int, int]]:  # offset -> (positions read, written)
        reads: dict[int, set[int]] = {}
        writes: dict[int, set[int]] = {}
        for p in axis.placements():
            reads.setdefault(p.offset, set()).add(p.in_pos)
            writes.setdefault(p.offset, set()).add(p.out_pos)
        return {d: (len(reads[d]), len(writes[d])) for d in reads}

    rows, cols = per_offset(geom.rows), per_offset(geom.cols)
    return tuple((rows[dr][0] * cols[dc][0] * cin, rows[dr][1] * cols[dc][1] * cout)
                 for dr, dc in geom.head_plan())


def compact_costs(geom: ConvGeometry) -> dict[str | None, int]:
    """Numbers stored in ``W_V`` and ``W_O`` for a generic kernel, per way of storing the
    plan construction (``vitconv.numeric.blocks.factorize``), over all channel groups:

    * ``"output"``: every head's output factor is a selection, stored as indices; its value
      factor is the ``writes`` nonzero columns of ``M_delta`` over the whole input token;
    * ``"value"``: every head's value factor is a selection; its output factor is the
      ``reads`` nonzero rows over the whole output token;
    * ``None``: both factors dense (``compact=False``), each head of width
      ``min(reads, writes)`` (:func:`structural_widths`), the selection a 0/1 matrix.

    Zero rows (columns) inside a kept factor are stored too, so a side whose kept factor
    spans a token the taps read (write) only a part of costs more: a 1x1 kernel of stride 2
    on patches of 2 reads one input pixel of four, so its value factor over the whole input
    token would store 4x the kernel, its output factor over the one output pixel 1x.
    """
    G = geom.groups
    token_in = geom.patch_size**2 * geom.in_channels // G
    token_out = geom.rows.out_patch * geom.cols.out_patch * geom.out_channels // G
    heads = head_extents(geom)
    return {
        "output": G * sum(token_in * writes for _, writes in heads),
        "value": G * sum(reads * token_out for reads, _ in heads),
        None: G * sum((token_in + token_out) * min(reads, writes) for reads, writes in heads),
    }


# Per token, each entry of a head's value vector is written by the value step, read and
# written by the attention's copy of its one key, and read by the output step.
VALUE_TOUCHES = 4


def compact_side(geom: ConvGeometry) -> str:
    """The side a compact layer stores as a selection, the same for every head: the one
    whose hard-mask forward touches the fewer numbers per token, the other factor's stored
    entries (:func:`compact_costs`, one multiply-add each) plus ``VALUE_TOUCHES`` per value
    entry (the heads' widths, ``writes`` or ``reads`` summed over the heads); ties: fewer
    stored, then ``"output"``. Decided by the geometry alone, never by the kernel's values.

    Both terms matter: a 1x1 kernel of stride 2 at ``P = 2`` (``C_in = 1024``,
    ``C_out = 512``) selects its inputs, storing 0.5M weights instead of 2M for twice the
    width; a 3x3 depthwise kernel of stride 2 at ``P = 2`` keeps its 4 narrow heads (16
    stored per channel, width 4) instead of selecting 9 entries (9 stored, width 9).
    """
    costs = compact_costs(geom)
    heads = head_extents(geom)
    widths = {"output": geom.groups * sum(w for _, w in heads),
              "value": geom.groups * sum(r for r, _ in heads)}
    return min(("output", "value"),
               key=lambda side: (costs[side] + VALUE_TOUCHES * widths[side], costs[side]))


def structural_weights(geom: ConvGeometry, compact: bool = True) -> int:
    """Numbers the plan construction stores in ``W_V`` and ``W_O`` for a generic kernel:
    :func:`compact_costs` of :func:`compact_side` (``compact=False``: of both dense). At
    ``P = 1`` and stride 1 the compact count is the kernel's own size; it grows with ``P``,
    since zero rows inside a block are stored too."""
    return compact_costs(geom)[compact_side(geom) if compact else None]


def group_input_channels(out_channel: int, geom: ConvGeometry) -> range:
    """Input channels that output channel ``out_channel`` reads (its group)."""
    cin_g = geom.in_channels // geom.groups
    group = out_channel // (geom.out_channels // geom.groups)
    return range(group * cin_g, (group + 1) * cin_g)


def source_index(pos: int, length: int, pad: tuple[int, int], mode: str) -> int | None:
    """Which input pixel a padded position reads, per PyTorch padding mode (None: zero).

    ``pos`` counts from the first image pixel; positions beyond the convolution's own
    padding ``pad = (lo, hi)`` are the zero frame of the token grid (docs/theory.md §2).
    """
    if 0 <= pos < length:
        return pos
    if mode == "zeros" or not -pad[0] <= pos < length + pad[1]:
        return None
    if mode == "circular":
        return pos % length
    if mode == "replicate":
        return min(max(pos, 0), length - 1)
    if mode == "reflect":
        return -pos if pos < 0 else 2 * (length - 1) - pos
    raise ValueError(f"padding_mode={mode!r} is not one of zeros, reflect, replicate, circular")


# --- symbolic instances ---------------------------------------------------------------

def symbolic_kernel(geom: ConvGeometry) -> tuple[dict, list[sp.Symbol]]:
    """Symbols ``w_{o,c,s,t}`` (``c`` local to the group) and ``b_o``."""
    cin_g = geom.in_channels // geom.groups
    w = {
        (o, c, s, t): sp.Symbol(f"w_{o}_{c}_{s}_{t}")
        for o in range(geom.out_channels) for c in range(cin_g)
        for s in range(geom.rows.kernel_size) for t in range(geom.cols.kernel_size)
    }
    return w, [sp.Symbol(f"b_{o}") for o in range(geom.out_channels)]


def symbolic_image(channels: int, height: int, width: int) -> list:
    """Symbols ``x_{c,i,j}`` as nested lists ``x[c][i][j]``."""
    return [[[sp.Symbol(f"x_{c}_{i}_{j}") for j in range(width)] for i in range(height)]
            for c in range(channels)]


def symbolic_blocks(geom: ConvGeometry, w: dict) -> dict[tuple[int, int], sp.Matrix]:
    """``M_delta`` as sympy matrices of shape ``(P*P*C_in, P_out*P_out*C_out)``."""
    P, cin_g = geom.patch_size, geom.in_channels // geom.groups
    blocks = {}
    for delta, taps in block_taps(geom).items():
        M = sp.zeros(geom.token_dim_in, geom.token_dim_out)
        for bt in taps:
            for o in range(geom.out_channels):
                for c in group_input_channels(o, geom):
                    row = token_index(*bt.in_pixel, c, P, geom.in_channels)
                    col = token_index(*bt.out_pixel, o, geom.cols.out_patch, geom.out_channels)
                    M[row, col] = w[(o, c % cin_g, *bt.tap)]
        blocks[delta] = M
    return blocks


def conv_by_definition(x: list, w: dict, bias: list, geom: ConvGeometry, mode: str) -> list:
    """``y[o][i][j] = b[o] + sum w[o,c,s,t] * x[c, i*stride + s*dil - pad, ...]``
    (docs/theory.md §2)."""
    H, W = len(x[0]), len(x[0][0])
    r, q = geom.rows, geom.cols
    cin_g = geom.in_channels // geom.groups
    pads = ((r.pad_lo, r.pad_hi), (q.pad_lo, q.pad_hi))
    out = []
    for o in range(geom.out_channels):
        plane = []
        for i in range(r.output_length(H)):
            line = []
            for j in range(q.output_length(W)):
                acc = bias[o]
                for c in group_input_channels(o, geom):
                    for s in range(r.kernel_size):
                        for t in range(q.kernel_size):
                            ii = source_index(i * r.stride + s * r.dilation - r.pad_lo, H,
                                              pads[0], mode)
                            jj = source_index(j * q.stride + t * q.dilation - q.pad_lo, W,
                                              pads[1], mode)
                            if ii is not None and jj is not None:
                                acc += w[(o, c % cin_g, s, t)] * x[c][ii][jj]
                line.append(acc)
            plane.append(line)
        out.append(plane)
    return out


def attention_form(x: list, blocks: dict, bias: list, geom: ConvGeometry, mode: str) -> list:
    """``y_q = sum_delta x_{q+delta} M_delta + beta`` on the framed token grid, cropped."""
    C, H, W = len(x), len(x[0]), len(x[0][0])
    P, r, q = geom.patch_size, geom.rows, geom.cols
    gr, gc = r.grid(H, "height"), q.grid(W, "width")

    def token(A: int, B: int) -> sp.Matrix:  # token of grid patch (A, B), frame included
        vec = sp.zeros(1, geom.token_dim_in)
        for u in range(P):
            for v in range(P):
                ii = source_index(A * P + u, H, (r.pad_lo, r.pad_hi), mode)
                jj = source_index(B * P + v, W, (q.pad_lo, q.pad_hi), mode)
                if ii is not None and jj is not None:
                    for c in range(C):
                        vec[0, token_index(u, v, c, P, C)] = x[c][ii][jj]
        return vec

    beta = sp.Matrix([[bias[o] for _u in range(r.out_patch) for _v in range(q.out_patch)
                       for o in range(geom.out_channels)]])
    y = [[[None] * (gc.query_tokens * q.out_patch) for _ in range(gr.query_tokens * r.out_patch)]
         for _ in range(geom.out_channels)]
    for A in range(gr.query_tokens):
        for B in range(gc.query_tokens):
            yq = beta.copy()
            for (da, db), M in blocks.items():
                yq += token(A + da, B + db) * M
            for u in range(r.out_patch):
                for v in range(q.out_patch):
                    for o in range(geom.out_channels):
                        col = token_index(u, v, o, q.out_patch, geom.out_channels)
                        y[o][A * r.out_patch + u][B * q.out_patch + v] = yq[0, col]
    return [[line[: gc.out_length] for line in plane[: gr.out_length]] for plane in y]


@dataclass(frozen=True)
class IdentityResult:
    """Outcome of :func:`prove_identity` on one instance."""

    outputs: int        # output pixels (times channels) compared
    terms: int          # monomials in the convolution's outputs, summed
    heads: int
    proved: bool
    seconds: float
    mismatch: str | None = None


def prove_identity(
    geom: ConvGeometry, height: int, width: int, mode: str = "zeros"
) -> IdentityResult:
    """Prove ``sum_delta x_{q+delta} M_delta + beta == conv(x)`` exactly on one instance.

    Every output pixel's difference is expanded by sympy and must be identically zero as a
    polynomial in the kernel, bias and pixel symbols.
    """
    start = time.perf_counter()
    w, bias = symbolic_kernel(geom)
    x = symbolic_image(geom.in_channels, height, width)
    expected = conv_by_definition(x, w, bias, geom, mode)
    got = attention_form(x, symbolic_blocks(geom, w), bias, geom, mode)
    outputs = terms = 0
    for o, (plane_e, plane_g) in enumerate(zip(expected, got, strict=True)):
        for i, (line_e, line_g) in enumerate(zip(plane_e, plane_g, strict=True)):
            for j, (e, g) in enumerate(zip(line_e, line_g, strict=True)):
                outputs += 1
                terms += len(sp.Add.make_args(e))
                diff = sp.expand(e - g)
                if diff != 0:
                    return IdentityResult(outputs, terms, geom.num_heads, False,
                                          time.perf_counter() - start,
                                          f"output ({o}, {i}, {j}) differs by {diff}")
    return IdentityResult(outputs, terms, geom.num_heads, True, time.perf_counter() - start)
