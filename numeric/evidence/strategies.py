"""Hypothesis strategies describing the space of convolutions the construction covers.

:func:`conv_cases` draws every ``nn.Conv2d`` option (channels, groups, rectangular
kernels, dilation, stride dividing the patch, integer/pair/'same'/'valid' padding, all four
padding modes), a patch size and an image size that fits; dependent values are drawn
locally so that shrinking reaches minimal counterexamples. Used by the tests and by the
numeric obligation of ``vitconv verify``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from vitconv.theory.cases import ConvCase
from vitconv.theory.geometry import PADDING_MODES, resolve_padding


def _min_grid(kernel: int, dilation: int, pads: tuple[int, int], mode: str, patch: int) -> int:
    """Fewest patches along an axis for which this convolution is valid."""
    need = dilation * (kernel - 1) + 1 - sum(pads)  # output length >= 1
    if mode == "reflect":
        need = max(need, max(pads) + 1)  # reflection needs padding < size
    elif mode == "circular":
        need = max(need, max(pads))
    return max(1, -(-need // patch))


@st.composite
def conv_cases(
    draw: st.DrawFn,
    *,
    max_patch: int = 4,
    max_channels_per_group: int = 3,
    max_groups: int = 3,
    max_extra_grid: int = 2,
) -> ConvCase:
    """A random valid convolution on a patch grid, as a :class:`ConvCase`.

    Kernels reach up to ``2P+2`` pixels, past the ``r <= P`` regime, so plans of more
    than 9 heads are covered too.
    """
    P = draw(st.integers(1, max_patch), label="patch_size")
    divisors = [d for d in range(1, P + 1) if P % d == 0]
    stride = (draw(st.sampled_from(divisors)), draw(st.sampled_from(divisors)))
    groups = draw(st.integers(1, max_groups), label="groups")
    cin = groups * draw(st.integers(1, max_channels_per_group))
    cout = groups * draw(st.integers(1, max_channels_per_group))
    kernel = (draw(st.integers(1, 2 * P + 2)), draw(st.integers(1, 2 * P + 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding_choices = [st.just("valid"), st.integers(0, 3),
                       st.tuples(st.integers(0, 3), st.integers(0, 3))]
    if stride == (1, 1):
        padding_choices.insert(0, st.just("same"))
    padding = draw(st.one_of(*padding_choices), label="padding")
    mode = draw(st.sampled_from(PADDING_MODES), label="padding_mode")
    pads = resolve_padding(padding, kernel, dilation, stride)
    grid = tuple(
        _min_grid(kernel[i], dilation[i], pads[i], mode, P) + draw(st.integers(0, max_extra_grid))
        for i in range(2)
    )
    return ConvCase(
        "hypothesis", P, kernel, cin, cout, stride=stride, padding=padding, dilation=dilation,
        groups=groups, padding_mode=mode, grid=grid, bias=draw(st.booleans(), label="bias"))
