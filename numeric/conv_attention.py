"""Any ``nn.Conv2d`` as multi-head self-attention on patch tokens (docs/theory.md §3.2).

The construction theorem: with content-free scores (``W_Q = W_K = 0``), a relative-bias
table that points head ``h`` at patch offset ``delta_h`` of the head plan, value/output
weights with ``W_V^h W_O^h = M_{delta_h}`` and ``b_O = beta`` (the bias tiled over the
output pixels of a patch), the attention layer computes the convolution exactly.

    image --frame_image--> framed --patchify--> tokens --attention--> tokens
          --unpatchify--> output patches --crop--> conv(image)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.attention import DEFAULT_KEY_DIM, RelativeMultiheadAttention, tracing
from vitconv.numeric.blocks import Factorization, Factors, factorize, offset_blocks
from vitconv.numeric.convertible import check_convertible, conv_geometry
from vitconv.numeric.grouped_linear import ChannelGroups, GroupedShape
from vitconv.numeric.patches import frame_image, patchify, unpatchify
from vitconv.numeric.selection import Selection
from vitconv.theory.construction import compact_side
from vitconv.theory.geometry import PADDING_MODES, ConvGeometry


@dataclass(frozen=True)
class ConstructionRecord:
    """What the construction decided for one layer, frozen on the module as ``.construction``.

    ``vitconv.numeric.tolerances`` bounds a layer's rounding error from this record, the kernel and
    the input alone; nothing measured on the layer enters the bound.

    Fields: ``heads`` (``"plan"``: one head per offset; ``"minimal"``: ``rho`` or ``rho + 1``
    heads mixing offsets), ``geometry`` and ``padding_mode`` (the convolution on its patch
    grid), ``head_plan`` (the offset each head attends to, ``None`` when heads mix offsets),
    ``alpha`` (``None``: hard masks; else the finite score gap), ``value_dims`` (value width
    per head), ``support`` (the most offsets one head attends to) and ``log_range`` (the
    largest ``|log p|`` of the attention probabilities; 0 for hard heads), ``value_groups``
    (the channel groups the value and output weights are block diagonal over: the
    convolution's ``groups`` for the plan construction, 1 for dense weights), ``selection``
    (``"value"`` or ``"output"``: that projection is stored as the 0/1 selection it is,
    :class:`~numeric.selection.Selection`; ``None``: both are ordinary dense weights).
    """

    heads: str
    geometry: ConvGeometry
    padding_mode: str
    head_plan: tuple[tuple[int, int], ...] | None
    alpha: float | None
    value_dims: tuple[int, ...]
    support: int = 1
    log_range: float = 0.0
    value_groups: int = 1
    selection: str | None = None


def plan_offset_range(plan: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The bias table a plan needs: its offsets plus a border row/column on every side."""
    rows, cols = [d[0] for d in plan], [d[1] for d in plan]
    return (min(rows) - 1, max(rows) + 1), (min(cols) - 1, max(cols) + 1)


class ConvAttention(nn.Module):
    """Images in, images out: relative-bias MHSA on the patch tokens of a convolution's input.

    Args:
        geometry: the convolution on its patch grid (``vitconv.theory.geometry.ConvGeometry``).
        padding_mode: the convolution's ``padding_mode`` (used to fill the token frame).
        value_dims: value width per head (their number is the number of heads).
        key_dim: query/key width per head.
        offset_range: the relative-bias table's range (default: the plan's offsets plus a
            border; give the whole grid for a freely trainable layer).
        construction: the :class:`ConstructionRecord` when the weights come from the
            construction (``as_attention`` passes it).
        value_groups: split the value and output weights into this many channel groups
            (block diagonal, ``vitconv.numeric.grouped_linear``); must divide both channel counts.
        projections: ``(value, output)`` modules to use instead of fresh ones (see
            ``RelativeMultiheadAttention``).

    ``forward(x)`` maps ``(B, C_in, H, W)`` (``H``, ``W`` multiples of the patch size) to
    the convolution's output shape ``(B, C_out, H_out, W_out)``. Attributes: ``num_heads``,
    ``offsets`` (the patch offsets the kernel reaches, ``geometry.head_plan()``),
    ``construction`` (the frozen :class:`ConstructionRecord`, or ``None``), ``head_plan``
    (the offset each head attends to, or ``None`` when heads mix offsets, as in the minimal
    construction), ``value_dims``, ``total_value_dim``, ``alpha``.
    """

    def __init__(
        self,
        geometry: ConvGeometry,
        padding_mode: str,
        value_dims: Sequence[int],
        *,
        key_dim: int = DEFAULT_KEY_DIM,
        offset_range: tuple[tuple[int, int], tuple[int, int]] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        construction: ConstructionRecord | None = None,
        value_groups: int = 1,
        projections: tuple[nn.Module | None, nn.Module | None] | None = None,
    ) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode={padding_mode!r} must be one of {PADDING_MODES}")
        self.geometry = geometry
        self.padding_mode = padding_mode
        self.offsets = geometry.head_plan()
        # What the construction decided (None for a layer not built from a convolution).
        self.construction = construction
        self.check_input = True  # refuse NaN/inf input with a clear error
        self.attention = RelativeMultiheadAttention(
            geometry.token_dim_in, geometry.token_dim_out, value_dims, key_dim,
            offset_range or plan_offset_range(self.offsets),
            channel_groups=ChannelGroups(value_groups, geometry.in_channels,
                                         geometry.out_channels),
            projections=projections, device=device, dtype=dtype)

    @property
    def patch_size(self) -> int:
        return self.geometry.patch_size

    @property
    def num_heads(self) -> int:
        return self.attention.num_heads

    @property
    def execution(self) -> str:
        """``"auto"``, ``"dense"`` or ``"sparse"``: how the attention is computed
        (``vitconv.numeric.attention``; the same function on both paths)."""
        return self.attention.execution

    @execution.setter
    def execution(self, mode: str) -> None:
        self.attention.execution = mode

    @property
    def value_dims(self) -> tuple[int, ...]:
        return self.attention.value_dims

    @property
    def total_value_dim(self) -> int:
        return sum(self.value_dims)

    @property
    def head_plan(self) -> tuple[tuple[int, int], ...] | None:
        """The offset each head attends to (``None``: heads mix offsets, or no construction)."""
        return self.construction.head_plan if self.construction else None

    @property
    def alpha(self) -> float | None:
        """The construction's finite score gap (``None``: hard masks, or no construction)."""
        return self.construction.alpha if self.construction else None

    def extra_repr(self) -> str:
        g = self.geometry
        return (f"{g.in_channels}->{g.out_channels}, kernel=({g.rows.kernel_size}, "
                f"{g.cols.kernel_size}), patch_size={self.patch_size}, heads={self.num_heads}, "
                f"value_dims={self.value_dims}, padding_mode={self.padding_mode!r}, "
                f"alpha={self.alpha}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H_out, W_out)``, the convolution's output shape.

        Raises:
            ValueError: wrong number of channels, ``H``/``W`` not multiples of the patch
                size, an image too small for the kernel, or NaN/inf input.
        """
        if x.ndim != 4 or x.shape[1] != self.geometry.in_channels:
            raise ValueError(f"x must have shape (B, {self.geometry.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        _check_dtype(x, self.attention.rel_bias, "x")
        if self.check_input:
            _check_finite(x, "x")
        framed, rows, cols = frame_image(x, self.geometry, self.padding_mode)
        tokens = patchify(framed, self.patch_size)                       # (B, Gh', Gw', d_in)
        window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
        y = self.attention(tokens, window)                               # (B, Gq_h, Gq_w, d_out)
        out_patch = (self.geometry.rows.out_patch, self.geometry.cols.out_patch)
        image = unpatchify(y, out_patch, self.geometry.out_channels)
        return image[..., : rows.out_length, : cols.out_length]


    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, Gh, Gw, P*P*C_in) -> (B, Gh, Gw, P*P*C_out)``: the same layer on patch tokens,
        the same function as ``patchify(self(unpatchify(tokens)))`` without the two image
        round trips, and without projecting the frame's zero tokens one by one (equal up to
        rounding, ``vitconv.numeric.attention.project_framed``).

        For ``'zeros'`` padding, where the frame is zero tokens, and a convolution whose
        output covers whole output patches (e.g. stride 1, ``'same'`` padding).

        Raises:
            ValueError: another padding mode, or an output that would need cropping.
        """
        g = self.geometry
        if tokens.ndim != 4 or tokens.shape[-1] != g.token_dim_in:
            raise ValueError(f"tokens must have shape (B, Gh, Gw, {g.token_dim_in}), got "
                             f"{tuple(tokens.shape)}")
        _check_dtype(tokens, self.attention.rel_bias, "tokens")
        if self.check_input:
            _check_finite(tokens, "tokens")
        Gh, Gw = tokens.shape[1:3]
        rows, cols = g.rows.grid(Gh * g.patch_size, "height"), g.cols.grid(Gw * g.patch_size,
                                                                          "width")
        if self.padding_mode != "zeros" or any(
                a.out_length != a.query_tokens * axis.out_patch
                for a, axis in ((rows, g.rows), (cols, g.cols))):
            raise ValueError("forward_tokens needs padding_mode='zeros' and an output of whole "
                             "patches; use forward on images")
        frame = (rows.frame_lo, rows.frame_hi, cols.frame_lo, cols.frame_hi)
        window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
        return self.attention(tokens, window, frame)


def _check_dtype(x: torch.Tensor, weight: torch.Tensor, name: str) -> None:
    """One clear error for an input in another dtype than the layer (under autocast the
    autocast rules apply instead)."""
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{name} has dtype {x.dtype} but the layer is {weight.dtype}; "
                         f"convert one of them (e.g. layer.to({x.dtype}))")


def _check_finite(x: torch.Tensor, name: str) -> None:
    """Refuse NaN/inf input: a ``ValueError`` in eager mode; under ``torch.compile`` and
    ``torch.export`` an assertion in the graph (``torch.jit.trace`` drops it)."""
    if tracing():
        torch._assert_async(torch.isfinite(x).all(), f"{name} contains NaN or inf")
    elif not all_finite(x):
        raise ValueError(f"{name} contains NaN or inf")


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite. A finite sum proves it in one pass (NaN and
    inf propagate through a sum); only a non-finite sum, which finite entries can also
    give by overflow, pays for the entrywise test."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


HEAD_CHOICES = ("plan", "minimal")


@torch.no_grad()
def as_attention(
    conv: nn.Conv2d,
    patch_size: int,
    *,
    max_heads: int | None = None,
    alpha: float | None = None,
    key_dim: int = DEFAULT_KEY_DIM,
    heads: str = "plan",
    value_dims: int | Sequence[int] | None = None,
    offset_range: tuple[tuple[int, int], tuple[int, int]] | None = None,
    compact: bool = False,
) -> ConvAttention:
    """The construction theorem (docs/theory.md §3.2): an attention layer equal to ``conv``.

    Args:
        conv: any plain ``nn.Conv2d`` (any channels, groups, kernel, dilation, bias,
            padding and padding mode; stride must divide ``patch_size``).
        patch_size: side ``P`` of the square patches that form the tokens.
        max_heads: refuse plans with more heads than this.
        alpha: ``None`` for hard attention (masked scores, exact); a finite score gap
            ``alpha > 0`` for the softmax-gap version, off by at most
            ``(n-1) e^{-alpha}`` times the spread of the values (docs/theory.md §3.4; sensible:
            ``alpha`` of 20-40 in float32).
        key_dim: query/key width per head (queries and keys are zero: content-free).
        heads: ``"plan"`` (the theorem's construction: one head per offset the kernel
            reaches) or ``"minimal"`` (``rho`` or ``rho + 1`` heads for this very kernel,
            each attending to a probability mix of offsets; docs/theory.md §3.4,
            ``vitconv.numeric.minimal``).
        value_dims: value widths to use instead of the construction's: one int
            for every head, or one per head (factors are zero-padded; a trainable layer of
            a fixed shape, whatever the kernel's ranks).
        offset_range: the bias table's range (default: the plan plus a border); a wider
            table lets later training attend anywhere.
        compact: store one factor of every head as the 0/1 selection it is, as indices
            (:class:`~numeric.selection.Selection`: same function, about half the weights
            on pixel tokens), with ``heads="plan"`` and no ``value_dims``. The side, the
            same for every head, is the one whose forward touches the fewer numbers
            (``vitconv.theory.construction.compact_side``), so a head may be wider than
            ``factorize`` would make it (a 1x1 kernel of stride 2 at ``P = 2`` selects its
            ``C_in`` inputs rather than store 4x its kernel). That projection's ones are
            then fixed (its bias stays trainable): for inference; ``False`` (default)
            keeps both projections ordinary trainable weights.
    Returns:
        A :class:`ConvAttention` on the conv's device and dtype; with ``heads="plan"`` one
        head per offset of the plan, head ``h`` of value width ``min(#nonzero rows,
        #nonzero columns)`` of ``M_{delta_h}`` (at least its rank; compact: those of the
        chosen side).
    Raises:
        TypeError: ``conv`` is not a plain ``nn.Conv2d``.
        ValueError: ``patch_size`` is not a positive multiple of the stride, the
            construction needs more than ``max_heads`` heads (the message names how many),
            or ``alpha`` is given with ``heads="minimal"``.
    """
    check_convertible(conv)
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    if not isinstance(compact, bool):
        raise ValueError(f"compact must be a bool, got {compact!r}")
    if compact and (heads != "plan" or value_dims is not None):
        raise ValueError("compact=True applies to heads='plan' without value_dims (padded or "
                         "mixed factors are no selection)")
    if max_heads is not None and (isinstance(max_heads, bool) or not isinstance(max_heads, int)
                                  or max_heads < 1):
        raise ValueError(f"max_heads must be a positive int or None, got {max_heads!r}")
    if heads not in HEAD_CHOICES:
        raise ValueError(f"heads={heads!r} must be one of {HEAD_CHOICES}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha} must be a finite positive score gap, or None")
    geometry = conv_geometry(conv, patch_size)
    if heads == "minimal":
        if alpha is not None:
            raise ValueError("alpha applies to heads='plan' only; the minimal heads mix offsets")
        return _minimal_attention(conv, geometry, max_heads, key_dim)
    if max_heads is not None and geometry.num_heads > max_heads:
        raise ValueError(
            f"this convolution needs {geometry.num_heads} heads on patches of {patch_size} "
            f"(offsets {geometry.rows.offsets()} x {geometry.cols.offsets()}), "
            f"but max_heads={max_heads}")
    # Per channel group: a grouped or depthwise layer costs its own weights, not C_in x C_out;
    # each block only on the pixels its taps touch (a strided kernel skips the others).
    groups = geometry.groups
    blocks = offset_blocks(conv.weight.detach(), geometry)
    # A compact layer stores one side as indices, the side whose forward touches the fewer
    # numbers (theory.construction.compact_side, from the geometry alone); None: both dense.
    selection = compact_side(geometry) if compact else None
    factors = [factorize(blocks[delta], selection) for delta in geometry.head_plan()]
    del blocks  # the factors hold what they need of them
    if value_dims is not None:
        widths = ([value_dims] * len(factors) if isinstance(value_dims, int)
                  else list(value_dims))
        if len(widths) != len(factors):
            raise ValueError(f"value_dims has {len(widths)} entries for {len(factors)} heads")
        if any(w % groups for w in widths):
            raise ValueError(f"value_dims {tuple(widths)} must be multiples of the "
                             f"convolution's groups={groups}")
        factors = [pad_factor(f, w // groups) for f, w in zip(factors, widths, strict=True)]
    record = ConstructionRecord("plan", geometry, conv.padding_mode, geometry.head_plan(),
                                alpha, tuple(groups * f.width for f in factors),
                                value_groups=groups, selection=selection)
    module = _content_free_module(conv, record, factors, key_dim, offset_range)
    module.attention.select_offsets(record.head_plan, alpha)
    return module


def pad_factor(f: Factorization, width: int) -> Factors:
    """The same product ``value @ output`` with inner width ``width`` (zero columns/rows).

    Raises:
        ValueError: if ``width`` is below the factor's width.
    """
    if width < f.width:
        raise ValueError(f"value width {width} is below the width {f.width} that a block "
                         "M_delta needs (its nonzero rows or columns, whichever are fewer)")
    extra = width - f.width
    lead = f.value.shape[:-2]
    value = torch.cat([f.value, f.value.new_zeros(*lead, f.value.shape[-2], extra)], dim=-1)
    output = torch.cat([f.output, f.output.new_zeros(*lead, extra, f.output.shape[-1])], dim=-2)
    return Factors(value, output)


def _content_free_module(conv: nn.Conv2d, record: ConstructionRecord,
                         factors: list[Factorization] | list[Factors], key_dim: int,
                         offset_range=None) -> ConvAttention:
    """A :class:`ConvAttention` with zero queries/keys, ``W_V^h W_O^h`` from ``factors``
    and ``b_O = beta``; the caller sets where each head attends. With
    ``record.selection`` set, that projection is a :class:`Selection` of the factors'
    indices and only the other holds weights."""
    weight = conv.weight
    geometry = record.geometry
    projections = (None, None)
    if record.selection is not None:
        chosen = _selection(record, factors, weight.device, weight.dtype)
        projections = (chosen, None) if record.selection == "value" else (None, chosen)
    module = ConvAttention(geometry, conv.padding_mode, record.value_dims, key_dim=key_dim,
                           offset_range=offset_range, device=weight.device,
                           dtype=weight.dtype, construction=record,
                           value_groups=record.value_groups, projections=projections)
    att = module.attention
    for layer in (att.query, att.key):
        layer.weight.zero_()
        layer.bias.zero_()
    # Each head's factor goes straight into its slice of the weights (no concatenated copy):
    # stacks (groups, ., .) of per-group factors into a GroupedLinear, whose weight is
    # (groups, out, in); single matrices, or stacks of one group, into an nn.Linear.
    start = 0
    for f in factors:
        heads = slice(start, start + f.width)
        if record.selection != "value":
            _copy_block(att.value.weight, (heads, slice(None)), f.value.transpose(-1, -2))
        if record.selection != "output":
            _copy_block(att.output.weight, (slice(None), heads), f.output.transpose(-1, -2))
        start += f.width
    att.value.bias.zero_()
    pixels = geometry.rows.out_patch * geometry.cols.out_patch
    bias = conv.bias if conv.bias is not None else weight.new_zeros(conv.out_channels)
    att.output.bias.copy_(bias.detach().repeat(pixels))  # beta, in (u, v, o) order
    return module


def _copy_block(weight: torch.Tensor, block: tuple[slice, slice], part: torch.Tensor) -> None:
    """``weight[..., rows, cols] = part``, for a dense ``(out, in)`` weight (``part`` may be
    a stack of one group) or a grouped ``(groups, out, in)`` one."""
    if weight.ndim == 2 and part.ndim == 3:
        part = part[0]
    weight[(Ellipsis, *block)].copy_(part)


def _selection(record: ConstructionRecord, factors: list[Factorization],
               device: torch.device, dtype: torch.dtype) -> Selection:
    """The selection factor of every head as one :class:`Selection` over the layer's
    features: value features are ``(slot, group)`` with the heads' slots in order
    (``vitconv.numeric.grouped_linear``'s layout), so slot ``s`` of group ``g`` reads (or
    writes) the token entry of group ``g`` at the factors' local index ``s``."""
    g = record.geometry
    G = record.value_groups
    total = sum(record.value_dims)
    local = torch.cat([f.index for f in factors]).cpu()                # (total // G,)
    if record.selection == "value":
        token = GroupedShape(g.patch_size**2, g.in_channels // G)
        index = token.index(G)[:, local].T.reshape(-1)                   # (total,)
        return Selection(g.token_dim_in, total, index, "gather", device=device, dtype=dtype)
    token = GroupedShape(g.rows.out_patch * g.cols.out_patch, g.out_channels // G)
    index = token.index(G)[:, local].T.reshape(-1)
    return Selection(total, g.token_dim_out, index, "scatter", device=device, dtype=dtype)


def _minimal_attention(conv: nn.Conv2d, geometry: ConvGeometry, max_heads: int | None,
                       key_dim: int) -> ConvAttention:
    from vitconv.numeric.minimal import minimal_plan  # scipy is needed only for this path

    plan = minimal_plan(conv, geometry.patch_size)
    if max_heads is not None and max(plan.heads, 1) > max_heads:
        raise ValueError(f"this kernel needs {plan.heads} heads even in the minimal "
                         f"construction (rho = {plan.rank}), but max_heads={max_heads}")
    matrices = plan.matrices.to(dtype=conv.weight.dtype, device=conv.weight.device)
    factors = [factorize(W) for W in matrices]
    positive = plan.distributions[plan.distributions > 0]
    record = ConstructionRecord(
        "minimal", geometry, conv.padding_mode, None, None, tuple(f.width for f in factors),
        support=int((plan.distributions > 0).sum(1).max()),
        log_range=float(-positive.log().min()) if positive.numel() else 0.0)
    module = _content_free_module(conv, record, factors, key_dim)
    module.attention.set_distributions(plan.offsets,
                                       plan.distributions.to(module.attention.rel_bias.dtype))
    return module
