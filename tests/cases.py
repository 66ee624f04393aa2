"""Rejected inputs: each must raise the named exception with a message matching the pattern.

The accepted cases live in ``theory.cases`` (shared with the symbolic proofs and verify).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric import (
    RelativeMultiheadAttention,
    as_attention,
    convert_model,
    patchify,
    plan_conversion,
)
from vitconv.theory.geometry import AxisGeometry, ConvGeometry


@dataclass(frozen=True)
class Rejected:
    name: str
    call: Callable[[], object]
    error: type[Exception]
    match: str


class ScaledConv(nn.Conv2d):
    """A Conv2d subclass with its own forward: not a plain convolution any more."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class StandardisedConv(nn.Conv2d):
    """Weight standardisation through ``_conv_forward``: forward itself is untouched."""

    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight - weight.mean(), bias)


def _hooked(kind: str) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 3)
    if kind == "forward":
        conv.register_forward_hook(lambda _m, _i, out: 2 * out)
    else:
        conv.register_forward_pre_hook(lambda _m, args: (2 * args[0],))
    return conv


def _with_value(value: float) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 3)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = value
    return conv


def _regrown() -> nn.Conv2d:
    """A stem adapted to grayscale by replacing its weight, its attributes left at 3."""
    conv = nn.Conv2d(3, 4, 3)
    conv.weight = nn.Parameter(conv.weight.detach().sum(1, keepdim=True))
    return conv


def _masked_attention() -> object:
    att = RelativeMultiheadAttention(4, 4, [2], offset_range=((-2, 2), (-2, 2)))
    att.select_offsets([(1, 1)])  # no key at offset (1, 1) from the last query row
    return att(torch.zeros(1, 2, 2, 4))


conv3 = nn.Conv2d(3, 4, 3, padding=1)

REJECTED: tuple[Rejected, ...] = (
    Rejected("patchify: height not a multiple of P",
             lambda: patchify(torch.zeros(1, 1, 5, 4), 2), ValueError,
             r"image height 5 is not a multiple of patch_size=2"),
    Rejected("stride does not divide the patch size",
             lambda: as_attention(nn.Conv2d(1, 1, 3, stride=2), 3), ValueError,
             r"patch_size=3 must be a multiple of stride=2"),
    Rejected("more heads than allowed",
             lambda: as_attention(nn.Conv2d(1, 1, 7, padding=3), 2, max_heads=9), ValueError,
             r"needs 25 heads on patches of 2 .* max_heads=9"),
    Rejected("patch size zero", lambda: as_attention(conv3, 0), ValueError,
             r"patch_size must be a positive int"),
    Rejected("patch size bool", lambda: as_attention(conv3, True), ValueError,
             r"patch_size must be a positive int"),
    Rejected("alpha zero", lambda: as_attention(conv3, 2, alpha=0.0), ValueError,
             r"alpha=0.0 must be a finite positive"),
    Rejected("alpha NaN", lambda: as_attention(conv3, 2, alpha=float("nan")), ValueError,
             r"alpha=nan must be a finite positive"),
    Rejected("not a convolution", lambda: as_attention(nn.Linear(2, 2), 2), TypeError,
             r"expected a torch.nn.Conv2d, got Linear"),
    Rejected("Conv2d subclass with its own forward",
             lambda: as_attention(ScaledConv(1, 1, 3), 2), TypeError,
             r"ScaledConv subclasses nn.Conv2d with its own forward"),
    Rejected("NaN input", lambda: as_attention(conv3, 2)(torch.full((1, 3, 4, 4), torch.nan)),
             ValueError, r"x contains NaN or inf"),
    Rejected("wrong number of channels", lambda: as_attention(conv3, 2)(torch.zeros(1, 2, 4, 4)),
             ValueError, r"x must have shape \(B, 3, H, W\), got \(1, 2, 4, 4\)"),
    Rejected("image not a multiple of P", lambda: as_attention(conv3, 2)(torch.zeros(1, 3, 5, 4)),
             ValueError, r"image height=5 must be a positive multiple of patch_size=2"),
    Rejected("image too small for the kernel",
             lambda: as_attention(nn.Conv2d(1, 1, 5), 2)(torch.zeros(1, 1, 2, 2)),
             ValueError, r"too small for a kernel of size 5"),
    Rejected("reflect padding as large as the image",
             lambda: as_attention(nn.Conv2d(1, 1, 5, padding=2, padding_mode="reflect"), 2)(
                 torch.zeros(1, 1, 2, 2)),
             ValueError, r"padding 2 is too large for padding_mode='reflect' on image height 2"),
    Rejected("'same' padding with stride 2",
             lambda: ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, stride=2,
                                                   padding="same"),
             ValueError, r"padding='same' requires stride 1"),
    Rejected("negative padding", lambda: AxisGeometry(3, 2, pad_lo=-1), ValueError,
             r"padding must be >= 0, got -1"),
    Rejected("kernel size zero", lambda: AxisGeometry(0, 2), ValueError,
             r"kernel_size must be >= 1, got 0"),
    Rejected("groups not dividing channels",
             lambda: ConvGeometry.from_conv_params(kernel_size=3, patch_size=1, in_channels=3,
                                                   out_channels=4, groups=2),
             ValueError, r"in_channels=3 must be divisible by groups=2"),
    Rejected("convert_model: unknown layer name in patch_size",
             lambda: convert_model(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4), {"7": 2}),
             ValueError, r"not Conv2d modules: \['7'\]"),
    Rejected("convert_model: subclass with its own forward",
             lambda: convert_model(nn.Sequential(ScaledConv(3, 3, 3)), torch.zeros(1, 3, 4, 4)),
             TypeError, r"layer '0': .*ScaledConv"),
    Rejected("attention: a query with every key masked", _masked_attention, ValueError,
             r"head 0 masks every key"),
    Rejected("Conv2d subclass overriding _conv_forward",
             lambda: as_attention(StandardisedConv(1, 1, 3), 2), TypeError,
             r"StandardisedConv subclasses nn.Conv2d with its own _conv_forward"),
    Rejected("forward hook", lambda: as_attention(_hooked("forward"), 2), TypeError,
             r"forward hooks or pre-hooks \(<lambda>\)"),
    Rejected("forward pre-hook", lambda: as_attention(_hooked("pre"), 2), TypeError,
             r"forward hooks or pre-hooks \(<lambda>\)"),
    Rejected("old spectral_norm (a pre-hook)",
             lambda: as_attention(nn.utils.spectral_norm(nn.Conv2d(1, 1, 3)), 2), TypeError,
             r"forward hooks or pre-hooks \(SpectralNorm\)"),
    Rejected("parametrization",
             lambda: as_attention(nn.utils.parametrizations.weight_norm(nn.Conv2d(1, 1, 3)), 2),
             TypeError, r"has parametrizations \(weight\)"),
    Rejected("infinite weight", lambda: as_attention(_with_value(float("inf")), 2), ValueError,
             r"conv.weight has non-finite values"),
    Rejected("NaN weight", lambda: as_attention(_with_value(float("nan")), 2), ValueError,
             r"conv.weight has non-finite values"),
    Rejected("meta device", lambda: as_attention(nn.Conv2d(1, 1, 3, device="meta"), 2),
             ValueError, r"conv.weight is on the meta device"),
    Rejected("weight replaced by hand (grayscale stem)", lambda: as_attention(_regrown(), 2),
             ValueError, r"conv.weight has shape \(4, 1, 3, 3\) but the layer's in_channels"),
    Rejected("lazy convolution", lambda: as_attention(nn.LazyConv2d(2, 3), 2), TypeError,
             r"LazyConv2d is lazy"),
    Rejected("as_attention: compact with value_dims",
             lambda: as_attention(conv3, 2, compact=True, value_dims=64), ValueError,
             r"compact=True applies to heads='plan' without value_dims"),
    Rejected("convert_model: max_weight_ratio below 1",
             lambda: convert_model(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4),
                                   max_weight_ratio=0.5),
             ValueError, r"max_weight_ratio must be a real number >= 1"),
    Rejected("convert_model: compact='yes'",
             lambda: convert_model(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4),
                                   compact="yes"),
             ValueError, r"compact must be None or a bool"),
    Rejected("plan_conversion: compact=1",
             lambda: plan_conversion(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4), compact=1),
             ValueError, r"compact must be a bool, got 1"),
    Rejected("key_dim 0", lambda: as_attention(conv3, 2, key_dim=0), ValueError,
             r"key_dim must be a positive int, got 0"),
    Rejected("as_attention: max_heads=True", lambda: as_attention(conv3, 2, max_heads=True),
             ValueError, r"max_heads must be a positive int or None, got True"),
    Rejected("convert_model: patch_size=2.0",
             lambda: convert_model(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4), 2.0),
             ValueError, r"patch_size must be None, a positive int or a mapping"),
    Rejected("convert_model: max_heads=True",
             lambda: convert_model(nn.Sequential(conv3), torch.zeros(1, 3, 4, 4),
                                   max_heads=True),
             ValueError, r"max_heads must be a positive int, got True"),
    Rejected("convert_model: a hooked layer",
             lambda: convert_model(nn.Sequential(_hooked("forward")), torch.zeros(1, 1, 4, 4)),
             TypeError, r"layer '0': .*forward hooks"),
)
