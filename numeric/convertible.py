"""What may be converted, and how a ``Conv2d`` looks on a patch grid.

:func:`check_convertible` refuses, by name, every ``Conv2d`` whose computation is not
``F.conv2d`` of its own finite weights; :func:`conv_geometry` reads a layer's parameters
into a :class:`~vitconv.theory.geometry.ConvGeometry`. Both conversions (the construction
in ``conv_attention`` and the exact rank in ``rank``) start here.
"""

from __future__ import annotations

import torch
from torch import nn

from vitconv.theory.geometry import ConvGeometry


def check_convertible(conv: nn.Module) -> None:
    """Raise unless ``conv`` behaves as a plain ``nn.Conv2d`` with values to convert.

    Anything that changes what the layer computes beyond ``F.conv2d`` of its weights is
    refused by name, never converted silently: a subclass overriding ``forward`` or
    ``_conv_forward`` (e.g. weight standardisation), forward hooks and pre-hooks (the old
    ``spectral_norm`` is one), parametrizations; so are weights that cannot be reproduced
    (non-finite values, the ``meta`` device).

    Raises:
        TypeError: not a ``Conv2d``, a subclass with its own computation, a lazy layer,
            hooks or parametrizations.
        ValueError: a weight or bias whose shape disagrees with the layer's attributes
            (a weight replaced by hand), non-finite values, or tensors without values
            (``meta``).
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"expected a torch.nn.Conv2d, got {type(conv).__name__}")
    name = type(conv).__qualname__
    for method in ("forward", "_conv_forward"):
        if getattr(type(conv), method) is not getattr(nn.Conv2d, method):
            raise TypeError(f"{name} subclasses nn.Conv2d with its own {method}; only plain "
                            "nn.Conv2d layers can be converted exactly")
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(conv):
        raise TypeError(f"{name} has parametrizations ({', '.join(conv.parametrizations)}): "
                        "the weight it uses is computed; remove them (parametrize."
                        "remove_parametrizations) before converting")
    if isinstance(conv, nn.modules.lazy.LazyModuleMixin):
        raise TypeError(f"{name} is lazy (its weight takes its shape on the first call); run "
                        "the model once to materialise it before converting")
    hooks = [*conv._forward_pre_hooks.values(), *conv._forward_hooks.values()]
    if hooks:
        # A hook object (spectral_norm's SpectralNorm) by its class, a function by its name.
        kinds = sorted({getattr(h, "__name__", type(h).__name__) for h in hooks})
        raise TypeError(f"{name} has forward hooks or pre-hooks ({', '.join(kinds)}) that "
                        "can change what it computes (the old spectral_norm is one); remove "
                        "them before converting")
    expected = {"weight": (conv.out_channels, conv.in_channels // conv.groups,
                           *conv.kernel_size), "bias": (conv.out_channels,)}
    for pname, tensor in (("weight", conv.weight), ("bias", conv.bias)):
        if tensor is None:
            continue
        if tuple(tensor.shape) != expected[pname]:
            # F.conv2d follows the tensor, the geometry the attributes: they must agree.
            raise ValueError(f"conv.{pname} has shape {tuple(tensor.shape)} but the layer's "
                             f"in_channels, out_channels, groups and kernel_size say "
                             f"{expected[pname]}; set them to match the weight")
        if tensor.is_meta:
            raise ValueError(f"conv.{pname} is on the meta device: it holds no values to "
                             "convert (materialise the model first, e.g. to_empty + load)")
        if not torch.isfinite(tensor.detach()).all():
            raise ValueError(f"conv.{pname} has non-finite values (NaN or inf): the "
                             "convolution's output is not a finite function to reproduce")


def conv_geometry(conv: nn.Conv2d, patch_size: int) -> ConvGeometry:
    """The geometry of a ``nn.Conv2d`` seen through patches of ``patch_size`` pixels."""
    return ConvGeometry.from_conv_params(
        kernel_size=conv.kernel_size, patch_size=patch_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, in_channels=conv.in_channels,
        out_channels=conv.out_channels, groups=conv.groups)
