"""Where a convolution's taps land on a patch grid (docs/theory.md §2 and §3.1).

This module is the single source of truth for the geometry of the construction: which
patch offsets a head plan needs, where each kernel tap lands inside a neighbouring patch,
and how large the token frame around the image must be. ``numeric/`` and ``proofs/`` ask
it; they never re-derive offsets.

Conventions (docs/theory.md §2). Along one axis an output pixel ``i`` of a convolution reads the
input pixels ``i*stride + s*dilation - pad_lo`` for ``s = 0..K-1``. With patches of ``P``
input pixels and ``P_out = P/stride`` output pixels, output pixel ``i = A*P_out + u``
(output patch ``A``, in-patch position ``u``) reads input pixel ``(A + delta)*P + u'``
where ``delta = floor((u*stride + tap)/P)`` and ``u' = (u*stride + tap) mod P``, with
``tap = s*dilation - pad_lo``. The taps span ``[-a, b]`` with ``a = pad_lo`` and
``b = dilation*(K-1) - pad_lo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def token_index(row: int, col: int, channel: int, patch_cols: int, channels: int) -> int:
    """Position of pixel ``(row, col)``, channel ``channel`` inside a flattened token.

    The one flattening order of the project (docs/theory.md §2): ``(u, v, c)`` with the channel
    fastest, as in the usual ViT patch embedding. ``vitconv.numeric.patches`` realises it.
    """
    return (row * patch_cols + col) * channels + channel


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class TapPlacement:
    """One kernel tap read by one output pixel, located on the patch grid (one axis).

    ``out_pos`` (``u``) is the output pixel's in-patch position, ``tap`` (``s``) the kernel
    index, ``offset`` (``delta``) the patch offset of the pixel read, and ``in_pos``
    (``u'``) its position inside that patch.
    """

    out_pos: int
    tap: int
    offset: int
    in_pos: int


def offset_interval(a: int, b: int, patch_size: int, stride: int = 1) -> tuple[int, int]:
    """The patch offsets reached by taps spanning ``[-a, b]`` (the offset lemma,
    docs/theory.md §3.1).

    Returns ``(lo, hi)`` with ``lo = floor(-a/P)`` and ``hi = floor((P - stride + b)/P)``.
    For a contiguous span (dilation 1) the offsets needed are exactly ``lo..hi``; for a
    dilated kernel they are a subset. With stride 1 the count ``hi - lo + 1`` equals
    ``ceil(a/P) + ceil(b/P) + 1``. Proved for all ``P`` in ``vitconv.theory.smt``.
    """
    _require_int("patch_size", patch_size, 1)
    _require_int("stride", stride, 1)
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if patch_size % stride:
        raise ValueError(f"patch_size={patch_size} must be a multiple of stride={stride}")
    if a + b < 0:
        raise ValueError(f"the span [-a, b] = [{-a}, {b}] is empty (needs a + b >= 0)")
    return (-a) // patch_size, (patch_size - stride + b) // patch_size


@dataclass(frozen=True)
class AxisGrid:
    """Token counts along one axis for an input of a given length.

    ``tokens``: input patches ``G = L/P``. ``query_tokens``: output patches covering the
    convolution's output (``ceil(L_out/P_out)``, cropped afterwards). ``frame_lo`` and
    ``frame_hi``: tokens of padding added before and after, so that every query token sees
    every offset of the head plan. ``out_length``: the convolution's output length.
    """

    tokens: int
    query_tokens: int
    frame_lo: int
    frame_hi: int
    out_length: int

    @property
    def framed_tokens(self) -> int:
        return self.frame_lo + self.tokens + self.frame_hi


@dataclass(frozen=True)
class AxisGeometry:
    """One spatial axis of a convolution seen through patches of ``patch_size`` pixels.

    Raises:
        TypeError / ValueError: naming the argument when a size is not a positive int, a
            padding is negative, or ``patch_size`` is not a multiple of ``stride``.
    """

    kernel_size: int
    patch_size: int
    dilation: int = 1
    stride: int = 1
    pad_lo: int = 0
    pad_hi: int = 0

    def __post_init__(self) -> None:
        _require_int("kernel_size", self.kernel_size, 1)
        _require_int("patch_size", self.patch_size, 1)
        _require_int("dilation", self.dilation, 1)
        _require_int("stride", self.stride, 1)
        _require_int("padding", self.pad_lo, 0)
        _require_int("padding", self.pad_hi, 0)
        if self.patch_size % self.stride:
            raise ValueError(
                f"patch_size={self.patch_size} must be a multiple of stride={self.stride}: "
                "each patch must map to a whole number of output pixels"
            )

    @property
    def out_patch(self) -> int:
        """Output pixels per patch along this axis, ``P_out = P/stride``."""
        return self.patch_size // self.stride

    @property
    def taps(self) -> tuple[int, ...]:
        """Tap positions relative to ``stride*i``: ``s*dilation - pad_lo``."""
        return tuple(s * self.dilation - self.pad_lo for s in range(self.kernel_size))

    @property
    def span(self) -> tuple[int, int]:
        """``(a, b)`` such that the taps span ``[-a, b]``."""
        return self.pad_lo, self.dilation * (self.kernel_size - 1) - self.pad_lo

    def placements(self) -> tuple[TapPlacement, ...]:
        """Every (output position, tap) pair with the patch offset and position it reads."""
        P = self.patch_size
        return tuple(
            TapPlacement(u, s, (u * self.stride + tap) // P, (u * self.stride + tap) % P)
            for u in range(self.out_patch)
            for s, tap in enumerate(self.taps)
        )

    def offsets(self) -> tuple[int, ...]:
        """The exact, sorted set of patch offsets some tap reaches (the head plan's axis)."""
        return tuple(sorted({p.offset for p in self.placements()}))

    def interval(self) -> tuple[int, int]:
        """The lemma's interval ``(lo, hi)`` containing :meth:`offsets` (equal if dilation 1)."""
        a, b = self.span
        return offset_interval(a, b, self.patch_size, self.stride)

    def output_length(self, length: int) -> int:
        """The convolution's output length for an input of ``length`` pixels (may be <= 0)."""
        reach = length + self.pad_lo + self.pad_hi - self.dilation * (self.kernel_size - 1) - 1
        return reach // self.stride + 1

    def grid(self, length: int, name: str = "length") -> AxisGrid:
        """Token counts and frame for an input of ``length`` pixels.

        Raises:
            ValueError: if ``length`` is not a positive multiple of ``patch_size`` (never a
                silent crop) or the kernel does not fit (``output_length <= 0``).
        """
        P = self.patch_size
        if length <= 0 or length % P:
            raise ValueError(
                f"{name}={length} must be a positive multiple of patch_size={P} "
                "(images are never cropped silently)"
            )
        out_length = self.output_length(length)
        if out_length <= 0:
            raise ValueError(
                f"{name}={length} is too small for a kernel of size {self.kernel_size} "
                f"with dilation {self.dilation} and padding ({self.pad_lo}, {self.pad_hi})"
            )
        tokens = length // P
        query_tokens = -(-out_length // self.out_patch)
        offsets = self.offsets()
        # Keys of query A lie at A + delta; the frame must hold the farthest of them, and
        # the queries themselves (when padding makes the output longer than the input).
        frame_lo = max(0, -offsets[0])
        frame_hi = max(0, query_tokens - 1 + max(offsets[-1], 0) - (tokens - 1))
        return AxisGrid(tokens, query_tokens, frame_lo, frame_hi, out_length)


def resolve_padding(
    padding: str | int | tuple[int, int],
    kernel_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-axis ``(pad_lo, pad_hi)`` as PyTorch's ``Conv2d`` applies them.

    ``'same'`` pads ``total//2`` before and the rest after (``total = dilation*(K-1)``),
    as ``nn.Conv2d`` does; ``'valid'`` is no padding.

    Raises:
        ValueError: for an unknown padding string or ``'same'`` with a stride other than 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"padding={padding!r} must be 'same', 'valid', an int or a pair")
        if stride != (1, 1):
            raise ValueError(f"padding='same' requires stride 1, got stride={stride}")
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
    if isinstance(padding, int):
        padding = (padding, padding)
    if len(padding) != 2:
        raise ValueError(f"padding={padding!r} must have two entries (rows, columns)")
    return tuple((p, p) for p in padding)  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution on a patch grid: two axes plus channels and groups.

    The head plan (docs/theory.md §3.2) is the product of the per-axis offset sets, row-major:
    one head per 2-D offset ``(da, db)``.
    """

    rows: AxisGeometry
    cols: AxisGeometry
    in_channels: int = 1
    out_channels: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        _require_int("in_channels", self.in_channels, 1)
        _require_int("out_channels", self.out_channels, 1)
        _require_int("groups", self.groups, 1)
        if self.rows.patch_size != self.cols.patch_size:
            raise ValueError("patches are square: rows and cols need the same patch_size")
        for name, channels in (("in_channels", self.in_channels),
                               ("out_channels", self.out_channels)):
            if channels % self.groups:
                raise ValueError(f"{name}={channels} must be divisible by groups={self.groups}")

    @classmethod
    def from_conv_params(
        cls,
        *,
        kernel_size: int | tuple[int, int],
        patch_size: int,
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        in_channels: int = 1,
        out_channels: int = 1,
        groups: int = 1,
    ) -> ConvGeometry:
        """Build from ``nn.Conv2d``-style arguments (ints or (rows, cols) pairs)."""
        def pair(v: int | tuple[int, int]) -> tuple[int, int]:
            return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]

        k, s, d = pair(kernel_size), pair(stride), pair(dilation)
        pads = resolve_padding(padding, k, d, s)
        axes = [AxisGeometry(k[i], patch_size, d[i], s[i], *pads[i]) for i in range(2)]
        return cls(axes[0], axes[1], in_channels, out_channels, groups)

    @property
    def patch_size(self) -> int:
        return self.rows.patch_size

    @property
    def token_dim_in(self) -> int:
        """Length of an input token, ``P*P*C_in``."""
        return self.patch_size**2 * self.in_channels

    @property
    def token_dim_out(self) -> int:
        """Length of an output token, ``P_out_h*P_out_w*C_out``."""
        return self.rows.out_patch * self.cols.out_patch * self.out_channels

    def head_plan(self) -> tuple[tuple[int, int], ...]:
        """The 2-D offsets ``(da, db)`` the construction attends to, one head each."""
        return tuple(product(self.rows.offsets(), self.cols.offsets()))

    @property
    def num_heads(self) -> int:
        return len(self.rows.offsets()) * len(self.cols.offsets())
