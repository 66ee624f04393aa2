"""Exact transfer of a whole network (docs/theory.md §3.6), checked in float64.

A phase-1 network and ``convert(phase1)`` differ only in their token mixers, so they
compute the same function exactly when every converted mixer equals its convolution (the
construction theorem). :func:`transfer_check` checks both levels on real activations:

* per mixer: on the very inputs the phase-1 network feeds it, attention and convolution
  agree within the construction's rounding bound (``vitconv.numeric.tolerances``);
* end to end: the logits differ by at most the first-order propagation of those per-mixer
  bounds through the rest of the network, ``sum_b |d logits / d mixer_b| * bound_b``, plus
  the same propagation of a relative ``gamma_n`` perturbation of each mixer's output, which
  covers the rounding of the identical downstream code acting on inputs that differ.
  The Jacobians come from autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitconv.numeric.patches import patchify, unpatchify
from vitconv.numeric.tolerances import attention_error_bound, conv_error_bound, gamma
from vitconv.numeric.train.models import TokenNet, convert


@dataclass(frozen=True)
class TransferCheck:
    """``mixer_ratio``: worst per-mixer error / construction bound; ``logit_ratio``: worst
    end-to-end logit difference / propagated bound (both pass at <= 1)."""

    max_logit_difference: float
    max_logit: float
    mixer_ratio: float
    logit_ratio: float

    @property
    def passed(self) -> bool:
        return self.mixer_ratio <= 1.0 and self.logit_ratio <= 1.0


def _mixer_inputs(net: TokenNet, x: torch.Tensor) -> list[torch.Tensor]:
    inputs: list[torch.Tensor] = []
    hooks = [b.mixer.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
             for b in net.blocks]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return inputs


def _to_image(tokens: torch.Tensor, net: TokenNet) -> torch.Tensor:
    P = net.cfg.patch_size
    return unpatchify(tokens, (P, P), net.cfg.channels)


def _jacobian_weights(net: TokenNet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and, per block, ``|d logits_i / d mixer output|`` for every class ``i``:
    a list of ``(classes, B, G, G, D)`` tensors."""
    outputs: list[torch.Tensor] = []

    def keep(_m, _args, out):
        out.retain_grad()
        outputs.append(out)

    hooks = [b.mixer.register_forward_hook(keep) for b in net.blocks]
    try:
        logits = net(x)
        grads: list[list[torch.Tensor]] = [[] for _ in net.blocks]
        for i in range(logits.shape[1]):
            for o in outputs:
                o.grad = None
            logits[:, i].sum().backward(retain_graph=True)  # examples are independent
            for b, o in enumerate(outputs):
                grads[b].append(o.grad.abs().clone())
    finally:
        for h in hooks:
            h.remove()
    return logits.detach(), [torch.stack(g) for g in grads]


def transfer_check(phase1: TokenNet, x: torch.Tensor) -> TransferCheck:
    """Convert ``phase1`` (hard masks) and compare in float64 on ``x``; see the module doc."""
    phase1 = phase1.double().eval()
    x = x.double()
    phase2 = convert(phase1)
    mixer_bounds, magnitudes, mixer_ratio = [], [], 0.0
    for block1, block2, t in zip(phase1.blocks, phase2.blocks, _mixer_inputs(phase1, x),
                                 strict=True):
        image = _to_image(t, phase1)
        conv, attn = block1.mixer.conv, block2.mixer.attention
        with torch.no_grad():
            y_conv, y_attn = conv(image), attn(image)
            bound = attention_error_bound(attn, conv, image) + conv_error_bound(conv, image,
                                                                          torch.float64)
        err = (y_conv - y_attn).abs()
        mixer_ratio = max(mixer_ratio, float((err / bound).max()))
        P = phase1.cfg.patch_size
        mixer_bounds.append(patchify(bound, P))
        magnitudes.append(patchify(y_conv.abs(), P))
    logits1, weights = _jacobian_weights(phase1, x)
    with torch.no_grad():
        logits2 = phase2(x)
    # per-block chain of roundings downstream: LayerNorms, the MLP's two products, the head
    D = phase1.cfg.token_dim
    n = 2 * D + 2 * phase1.cfg.mlp_ratio * D + phase1.cfg.classes + 16
    rounding = gamma(n * len(phase1.blocks), torch.float64)
    bound = sum(((w * (b + rounding * m)).flatten(2).sum(-1))            # (classes, B)
                for w, b, m in zip(weights, mixer_bounds, magnitudes, strict=True)).T
    diff = (logits1 - logits2).abs()
    return TransferCheck(float(diff.max()), float(logits1.abs().max()), mixer_ratio,
                         float((diff / bound).max()))
