"""``vitconv bounds``: both head counts for a convolution shape, with one line of reasoning."""

from __future__ import annotations

from vitconv.theory.bounds import (
    EXACT_RANK_BUDGET,
    generic_rank,
    pixel_rho,
    rank_upper_bound,
    span_size,
)
from vitconv.theory.geometry import ConvGeometry


def _reasoning_plan(geom: ConvGeometry) -> str:
    rows, cols = geom.rows.offsets(), geom.cols.offsets()
    a, b = geom.rows.span
    return (f"taps span [-{a}, {b}] pixels; on {geom.patch_size}x{geom.patch_size} patches "
            f"they reach offsets {list(rows)} x {list(cols)} (offset lemma), one head each")


def _reasoning_rho(geom: ConvGeometry, rho: int, certified: bool) -> str:
    upper = rank_upper_bound(geom)
    tail = (f"certified by the upper bound {upper}" if certified
            else f"generic value between this and the upper bound {upper}")
    return (f"exact rank of the {geom.num_heads} blocks M_delta at a random integer kernel, "
            f"{tail}")


def describe(kernel_size: int | tuple[int, int], patch_size: int, in_channels: int,
             out_channels: int, *, stride: int = 1, dilation: int = 1,
             padding: str | int = "same", groups: int = 1) -> list[str]:
    """Lines for humans: the construction's heads and the lower bound, patch and pixel."""
    lines = []
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    lines.append(f"{kh}x{kw} kernel, {in_channels} -> {out_channels} channels, padding="
                 f"{padding!r}, stride {stride}, dilation {dilation}, groups {groups}")
    for label, P in ((f"patch tokens ({patch_size}x{patch_size})", patch_size),
                     ("pixel tokens (1x1)", 1)):
        if P % stride:
            lines.append(f"{label}: not possible, patch size must be a multiple of the stride")
            continue
        geom = ConvGeometry.from_conv_params(
            kernel_size=kernel_size, patch_size=P, stride=stride, padding=padding,
            dilation=dilation, in_channels=in_channels, out_channels=out_channels,
            groups=groups)
        lines.append(f"{label}")
        lines.append(f"  construction: {geom.num_heads} heads")
        lines.append(f"    {_reasoning_plan(geom)}")
        closed = pixel_rho(geom)
        if closed is not None:
            lines.append(f"  lower bound:  {closed} heads (rho, for a generic kernel)")
            lines.append("    min(taps, C_in C_out / groups): one block per tap, its entries "
                         "distinct (proved for all parameters)")
        elif span_size(geom) > EXACT_RANK_BUDGET:
            lines.append(f"  lower bound:  not computed; rho <= {rank_upper_bound(geom)}")
            lines.append(f"    its exact rank needs a {span_size(geom):,}-entry matrix, over the "
                         f"budget of {EXACT_RANK_BUDGET:,} entries (minutes of exact arithmetic)")
        else:
            bound = generic_rank(geom)
            lines.append(f"  lower bound:  {bound.rank} heads (rho, for a generic kernel)")
            lines.append(f"    {_reasoning_rho(geom, bound.rank, bound.certified)}")
    lines.append("a specific kernel needs exactly rho or rho + 1 heads of its own "
                 "(as_attention(conv, P, heads='minimal'))")
    return lines
