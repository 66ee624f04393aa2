"""Exact transfer of a whole network (docs/theory.md §3.6): the base of two-phase training."""

from __future__ import annotations

import torch

from vitconv.numeric.train.data import mnist_split
from vitconv.numeric.train.models import NetConfig, phase1_net
from vitconv.numeric.train.transfer import TransferCheck, transfer_check
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem

CONFIGS = (NetConfig(), NetConfig(depth=3, kernel_size=3, patch_size=2, channels=4),
           NetConfig(kernel_size=9, channels=4))  # the last reaches past a patch: 25 heads


def _evidence(checks: list[TransferCheck], size: str) -> Evidence:
    worst = max(max(c.mixer_ratio, c.logit_ratio) for c in checks)
    failed = [c for c in checks if not c.passed]
    return Evidence(
        not failed, size, examples=len(checks), worst=worst, bound=1.0,
        counterexample=str(failed[0]) if failed else None,
        detail=f"max |logits difference| {max(c.max_logit_difference for c in checks):.2e} "
               f"(logits up to {max(c.max_logit for c in checks):.2f}); worst = max over "
               "mixers and logits of difference / bound")


def _random_inputs(ctx: CheckContext) -> Evidence:
    checks = []
    for i, cfg in enumerate(CONFIGS[:2] if ctx.quick else CONFIGS):
        torch.manual_seed(ctx.seed + i)
        x = torch.randn(4 if ctx.quick else 8, cfg.in_channels, cfg.image_size, cfg.image_size)
        checks.append(transfer_check(phase1_net(cfg), x))
    return _evidence(checks, f"{len(checks)} random phase-1 networks, Gaussian images, "
                             "float64")


def _real_images(ctx: CheckContext) -> Evidence:
    split = mnist_split()
    images = torch.from_numpy(split.test_images[: 8 if ctx.quick else 32].astype("float32") / 255)
    torch.manual_seed(ctx.seed)
    checks = [transfer_check(phase1_net(NetConfig()), images)]
    return _evidence(checks, f"{len(images)} MNIST test images (built-in subset), float64")


THEOREM = Theorem(
    id="network_transfer",
    kind="theorem",
    title="Exact transfer: a network with convolutional mixers equals its converted ViT",
    section="3.6",
    hypotheses=(
        r"A network of blocks $x + \mathrm{Mixer}(\mathrm{LN}(x))$, $x + \mathrm{MLP}"
        r"(\mathrm{LN}(x))$ on patch tokens that keep their pixel structure, each mixer a "
        r"convolution of the pixel image the tokens form.",
    ),
    statement=(
        r"Replacing every mixer by its attention form (Theorem~\ref{thm:construction}, hard "
        r"masks) gives a Vision Transformer that computes the same function; its logits "
        r"equal the original's up to floating-point rounding."
    ),
    proof=(
        r"The two networks differ only in their mixers, and each converted mixer equals its "
        r"convolution as a function of its input tokens (Theorem~\ref{thm:construction}); "
        r"compositions of equal functions are equal. The numeric check compares every mixer "
        r"on the activations the network actually feeds it, against the construction's "
        r"rounding bound, and the logits against the first-order propagation of those bounds "
        r"(autograd Jacobians of the logits with respect to each mixer's output)."
    ),
    obligations=(
        Obligation("network_transfer.random_inputs",
                   "phase-1 networks vs converted, Gaussian inputs", "numeric", _random_inputs),
        Obligation("network_transfer.real_images",
                   "phase-1 network vs converted, MNIST images", "numeric", _real_images),
    ),
    family="random and MNIST inputs to phase-1 networks",
)
