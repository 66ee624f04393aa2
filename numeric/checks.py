"""One numeric check of the construction theorem, shared by the tests and ``vitconv verify``.

:func:`compare_case` builds a random convolution of a :class:`~theory.cases.ConvCase`,
converts it with :func:`~numeric.conv_attention.as_attention`, and compares three outputs
pairwise: the attention layer, ``F.conv2d`` (through ``nn.Conv2d``) and the NumPy float64
reference, each against the sum of the two sides' rounding-error bounds
(``numeric.tolerances``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from numeric.conv_attention import as_attention
from numeric.reference import conv2d_reference
from numeric.tolerances import (
    attention_error_bound,
    comparison_ratio,
    conv_error_bound,
    reference_bound,
)
from theory.cases import ConvCase


@dataclass(frozen=True)
class Comparison:
    """Errors of one case; ``worst_ratio <= 1`` means every bound held."""

    case: ConvCase
    dtype: str
    device: str
    heads: int
    total_value_dim: int
    max_error_vs_conv: float
    max_error_vs_reference: float
    worst_ratio: float
    shape_ok: bool

    @property
    def passed(self) -> bool:
        return self.shape_ok and self.worst_ratio <= 1.0


def random_conv(case: ConvCase, generator: torch.Generator, dtype: torch.dtype,
                device: torch.device | str = "cpu") -> nn.Conv2d:
    """``nn.Conv2d`` of ``case`` with standard-normal weights and bias from ``generator``."""
    conv = nn.Conv2d(**case.conv_kwargs())
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return conv.to(device=device, dtype=dtype)


def compare_case(case: ConvCase, *, dtype: torch.dtype = torch.float64, batch: int = 2,
                 seed: int = 0, device: torch.device | str = "cpu") -> Comparison:
    """Convert a random conv of ``case`` and compare attention, conv and reference."""
    gen = torch.Generator().manual_seed(seed)
    conv = random_conv(case, gen, dtype, device)
    x = torch.randn(batch, case.in_channels, *case.image, generator=gen, dtype=dtype).to(device)
    attn = as_attention(conv, case.patch_size)
    with torch.no_grad():
        y_att, y_conv = attn(x), conv(x)
    w = conv.weight.detach().cpu().numpy()
    b = conv.bias.detach().cpu().numpy() if conv.bias is not None else None
    y_ref = torch.from_numpy(conv2d_reference(
        x.cpu().numpy(), w, b, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, padding_mode=conv.padding_mode)).to(device)
    shape_ok = y_att.shape == y_conv.shape == y_ref.shape
    if not shape_ok:
        return Comparison(case, str(dtype), str(device), attn.num_heads, attn.total_value_dim,
                          float("inf"), float("inf"), float("inf"), False)
    b_att = attention_error_bound(attn, x)
    b_conv = conv_error_bound(conv, x, dtype)
    b_ref = reference_bound(conv, x)
    worst = max(comparison_ratio(y_att, y_conv, b_att + b_conv),
                comparison_ratio(y_att, y_ref, b_att + b_ref),
                comparison_ratio(y_conv, y_ref, b_conv + b_ref))
    err = lambda a, b: float((a.double() - b.double()).abs().max())  # noqa: E731
    return Comparison(case, str(dtype).removeprefix("torch."), str(device), attn.num_heads,
                      attn.total_value_dim, err(y_att, y_conv), err(y_att, y_ref), worst, True)


class strict_float32:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Switch TF32 off on CUDA (cuDNN convolutions and matmuls use it by default), so that
    float32 results obey float32 rounding bounds; restores the previous settings."""

    def __enter__(self) -> None:
        self._saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved
