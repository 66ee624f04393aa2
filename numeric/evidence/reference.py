"""An independent float64 convolution in NumPy, the second reference beside ``F.conv2d``.

It shares no code with PyTorch's convolution: padding through ``numpy.pad``, one strided
slice per kernel tap, accumulation with ``einsum``. Its rounding error in float64 is at
most ``gamma_n * (|w| * |x| + |b|)`` with ``n = C_in/groups * Kh * Kw + 1``.
"""

from __future__ import annotations

import numpy as np

from vitconv.theory.geometry import resolve_padding

NUMPY_PAD_MODE = {"zeros": "constant", "circular": "wrap", "reflect": "reflect",
                  "replicate": "edge"}


def conv2d_reference(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: str | int | tuple[int, int] = 0,
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """``torch.nn.functional.conv2d`` semantics (cross-correlation), computed in float64.

    Args:
        x: ``(B, C_in, H, W)``; weight: ``(C_out, C_in/groups, Kh, Kw)``; bias: ``(C_out,)``.
    Returns:
        ``(B, C_out, H_out, W_out)`` float64.
    """
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    C_out, cin_g, Kh, Kw = weight.shape
    (plo_h, phi_h), (plo_w, phi_w) = resolve_padding(padding, (Kh, Kw), dilation, stride)
    x = np.pad(x, ((0, 0), (0, 0), (plo_h, phi_h), (plo_w, phi_w)),
               mode=NUMPY_PAD_MODE[padding_mode])
    (sh, sw), (dh, dw) = stride, dilation
    out_h = (x.shape[2] - dh * (Kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] - dw * (Kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], C_out, out_h, out_w))
    cout_g = C_out // groups
    for g in range(groups):
        xs, outs = slice(g * cin_g, (g + 1) * cin_g), slice(g * cout_g, (g + 1) * cout_g)
        for s in range(Kh):
            for t in range(Kw):
                window = x[:, xs, s * dh: s * dh + (out_h - 1) * sh + 1: sh,
                           t * dw: t * dw + (out_w - 1) * sw + 1: sw]
                y[:, outs] += np.einsum("oc,bchw->bohw", weight[outs, :, s, t], window)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y
