"""Images to patch tokens and back, and the token frame that stands in for padding.

Flattening order (docs/theory.md §2, ``vitconv.theory.geometry.token_index``): a token is
the patch's pixels in row-major order ``(u, v)``, each pixel's channels contiguous (channel
fastest), as in the usual ViT patch embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vitconv.theory.geometry import AxisGrid, ConvGeometry


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Split images into flattened patches.

    Args:
        x: ``(B, C, H, W)`` with ``H`` and ``W`` multiples of ``patch_size``.
    Returns:
        ``(B, H/P, W/P, P*P*C)``, same dtype and device; token ``[b, a, c]`` is patch
        ``(a, c)`` flattened in ``(u, v, channel)`` order.
    Raises:
        ValueError: if ``H`` or ``W`` is not a multiple of ``patch_size`` (never cropped).
    """
    _check_image(x)
    B, C, H, W = x.shape
    P = patch_size
    for name, size in (("height", H), ("width", W)):
        if size % P:
            raise ValueError(f"image {name} {size} is not a multiple of patch_size={P}")
    x = x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)  # (B, Gh, Gw, P, P, C)
    return x.reshape(B, H // P, W // P, P * P * C)


def unpatchify(tokens: torch.Tensor, patch_shape: tuple[int, int], channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify` for patches of ``patch_shape = (rows, cols)`` pixels.

    Args:
        tokens: ``(B, Gh, Gw, rows*cols*channels)``.
    Returns:
        ``(B, channels, Gh*rows, Gw*cols)``.
    """
    B, Gh, Gw, D = tokens.shape
    ph, pw = patch_shape
    if D != ph * pw * channels:
        raise ValueError(f"token length {D} != {ph}*{pw}*{channels} (rows*cols*channels)")
    x = tokens.reshape(B, Gh, Gw, ph, pw, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, channels, Gh * ph, Gw * pw)


def frame_image(
    x: torch.Tensor, geom: ConvGeometry, padding_mode: str
) -> tuple[torch.Tensor, AxisGrid, AxisGrid]:
    """Pad an image the way the construction sees it (docs/theory.md §2, boundaries).

    The image is padded in the convolution's own mode by its own padding (as ``nn.Conv2d``
    does internally), then with zeros up to a whole frame of tokens; pixels of the mode
    padding that no tap reads are cropped. With ``'zeros'`` this is a frame of zero tokens.

    Returns:
        ``(framed, rows, cols)``: the framed image ``(B, C, P*Gh', P*Gw')`` and the
        per-axis :class:`~theory.geometry.AxisGrid` (frame sizes, query tokens, output
        length).
    Raises:
        ValueError: if the image size is not a multiple of the patch size, the kernel does
            not fit, or the padding is too large for ``'reflect'``/``'circular'``.
    """
    _check_image(x)
    H, W = x.shape[-2:]
    r, c = geom.rows, geom.cols
    rows, cols = r.grid(H, "image height"), c.grid(W, "image width")
    P = geom.patch_size
    own = (0, 0, 0, 0)
    if padding_mode != "zeros":
        for name, size, pads in (("height", H, (r.pad_lo, r.pad_hi)),
                                 ("width", W, (c.pad_lo, c.pad_hi))):
            # PyTorch's rules: reflect needs padding < size, circular padding <= size.
            limit = {"reflect": size - 1, "circular": size}.get(padding_mode, max(pads))
            if max(pads) > limit:
                raise ValueError(f"padding {max(pads)} is too large for padding_mode="
                                 f"{padding_mode!r} on image {name} {size}")
        own = (c.pad_lo, c.pad_hi, r.pad_lo, r.pad_hi)
        x = F.pad(x, own, mode=padding_mode)
    frame = (cols.frame_lo * P, cols.frame_hi * P, rows.frame_lo * P, rows.frame_hi * P)
    # Negative amounts crop mode-padding pixels that lie beyond every tap.
    return F.pad(x, tuple(f - o for f, o in zip(frame, own, strict=True))), rows, cols
