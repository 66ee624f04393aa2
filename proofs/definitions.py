"""Definitions and notation of the appendix (docs/theory.md §2), as data.

Each definition's text is LaTeX with ``<<name>>`` placeholders for sympy objects, like the
theorems' texts; ``report/`` prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from vitconv.theory.geometry import token_index


@dataclass(frozen=True)
class Definition:
    id: str
    title: str
    text: str
    formulas: Mapping[str, sp.Basic] = field(default_factory=dict)


def _token_formula() -> sp.Basic:
    u, v, c, P, C = sp.symbols("u v c P C", integer=True, nonnegative=True)
    return token_index(u, v, c, P, C)  # the very function the code uses, on symbols


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "convolution", "Convolution",
        r"Images are $x \in \mathbb{R}^{C \times H \times W}$ (PyTorch's NCHW without the batch). "
        r"A convolution is PyTorch's cross-correlation: $y[o,i,j] = b[o] + \sum_{c,s,t} "
        r"w[o,c,s,t]\, x[c,\ i\sigma + s d - p_{\mathrm{top}},\ j\sigma + t d - "
        r"p_{\mathrm{left}}]$ with stride $\sigma$, dilation $d$, padding $p$ in any of "
        r"PyTorch's modes and $c$ ranging over the group of $o$."),
    Definition(
        "tokens", "Patch tokens",
        r"With patch size $P$ dividing $H$ and $W$, the image is a grid of $H/P \times W/P$ "
        r"tokens, row-major. A token is its patch flattened with the channel fastest: pixel "
        r"$(u, v)$, channel $c$ sits at position $<<index>>$. Tokens are row vectors. The "
        r"offset of key token $k$ seen from query token $q$ is $\delta = k - q$ on the grid.",
        {"index": _token_formula()}),
    Definition(
        "blocks", "Block matrices",
        r"A convolution whose stride divides $P$ acts on tokens as "
        r"$y_q = \sum_\delta x_{q+\delta} M_\delta + \beta$, with $M_\delta$ of size "
        r"$P^2 C_{in} \times (P/\sigma)^2 C_{out}$ and $\beta$ the bias repeated over the "
        r"output pixels of a patch. Padding is a frame of tokens around the grid, filled as "
        r"the convolution pads."),
    Definition(
        "mhsa", "Multi-head self-attention of the standard form",
        r"$y_q = \sum_h \sum_k A^h_{qk}(X)(x_k W_V^h + b_V^h) W_O^h + b_O$ with "
        r"$A^h_{q\cdot} = \mathrm{softmax}_k(s^h_{qk})$ and "
        r"$s^h_{qk} = (x_q W_Q^h + b_Q^h)(x_k W_K^h + b_K^h)^\top/\sqrt{d_k} + B^h[k-q]$, "
        r"where $B^h$ is a learnable relative-position bias table. Positions enter the scores "
        r"only. A head attends hard to offset $\delta_h$ when $B^h[\delta_h] = 0$ and "
        r"$B^h[\delta] = -\infty$ otherwise (a masked score)."),
    Definition(
        "rho", "The rank $\\rho$",
        r"$\rho = \dim \operatorname{span}\{M_\delta\}$: the rank of the matrix whose rows are "
        r"$\mathrm{vec}(M_\delta)$, over the offsets the kernel reaches. For a shape it means "
        r"the generic value (at almost every kernel)."),
)
