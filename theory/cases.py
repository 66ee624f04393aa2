"""Named convolution cases shared by the symbolic proofs, the numeric checks and the tests.

One table (as in tracr's ``test_cases.py``): each case is checked symbolically (exact
polynomial identity) and numerically (against ``F.conv2d`` and a float64 reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitconv.theory.geometry import ConvGeometry


@dataclass(frozen=True)
class ConvCase:
    """A concrete ``nn.Conv2d`` configuration, a patch size and an image size."""

    name: str
    patch_size: int
    kernel_size: int | tuple[int, int]
    in_channels: int = 1
    out_channels: int = 1
    stride: int | tuple[int, int] = 1
    padding: str | int | tuple[int, int] = "same"
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    padding_mode: str = "zeros"
    grid: tuple[int, int] = (2, 2)  # image size in patches
    bias: bool = True
    expected_heads: int | None = field(default=None, compare=False)

    @property
    def image(self) -> tuple[int, int]:
        return self.grid[0] * self.patch_size, self.grid[1] * self.patch_size

    def conv_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.nn.Conv2d``."""
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups, bias=self.bias,
                    padding_mode=self.padding_mode)

    def geometry(self) -> ConvGeometry:
        return ConvGeometry.from_conv_params(
            kernel_size=self.kernel_size, patch_size=self.patch_size, stride=self.stride,
            padding=self.padding, dilation=self.dilation, in_channels=self.in_channels,
            out_channels=self.out_channels, groups=self.groups)


NAMED_CASES: tuple[ConvCase, ...] = (
    ConvCase("1x1 kernel", 2, 1, 2, 3, padding=0, expected_heads=1),
    ConvCase("3x3 in 2x2 patches", 2, 3, 2, 2, expected_heads=9),
    ConvCase("3x3 on pixel tokens", 1, 3, 2, 2, grid=(4, 3), expected_heads=9),
    ConvCase("5x5 in 2x2 patches (r = P)", 2, 5, expected_heads=9),
    ConvCase("7x7 in 2x2 patches (r > P)", 2, 7, grid=(3, 3), expected_heads=25),
    ConvCase("5x5 on pixel tokens", 1, 5, grid=(5, 5), expected_heads=25),
    ConvCase("even 2x2 kernel, same", 2, 2, expected_heads=4),
    ConvCase("even 4x4 kernel, same", 3, 4, expected_heads=9),
    ConvCase("rectangular 3x5", 2, (3, 5), 1, 2, padding=(1, 2), grid=(2, 3), expected_heads=9),
    ConvCase("3x3 stride 2 in 4x4 patches", 4, 3, stride=2, padding=1, expected_heads=4),
    ConvCase("stride (1, 2)", 2, 3, stride=(1, 2), padding=1, expected_heads=6),
    ConvCase("dilation 2 in 2x2 patches", 2, 3, dilation=2, expected_heads=9),
    ConvCase("dilation 5 skips patches", 2, 3, dilation=5, grid=(4, 4), expected_heads=25),
    ConvCase("grouped (groups=2)", 2, 3, 4, 2, groups=2, expected_heads=9),
    ConvCase("depthwise", 2, 3, 2, 2, groups=2, expected_heads=9),
    ConvCase("valid padding", 2, 3, padding="valid", grid=(3, 2), expected_heads=4),
    ConvCase("large padding", 2, 3, padding=3, expected_heads=9),
    ConvCase("no bias", 2, 3, bias=False, expected_heads=9),
    ConvCase("circular padding", 2, 3, padding_mode="circular", expected_heads=9),
    ConvCase("reflect padding", 2, 3, 1, 2, padding_mode="reflect", expected_heads=9),
    ConvCase("replicate padding", 2, 5, padding_mode="replicate", expected_heads=9),
    ConvCase("asymmetric reflect padding", 2, (5, 3), padding=(2, 1), padding_mode="reflect",
             grid=(3, 3), expected_heads=9),
    ConvCase("single-token grid", 3, 3, grid=(1, 1), expected_heads=9),
    ConvCase("kernel as large as the image", 2, 4, padding="valid", expected_heads=9),
    ConvCase("stride 3 in 3x3 patches", 3, 3, stride=3, padding=0, grid=(2, 2),
             expected_heads=1),
)


def identity_grid(quick: bool = False) -> tuple[ConvCase, ...]:
    """Instances for the symbolic identity: ``P`` in 1..3, square kernels up to ``2P+1``
    ('same' padding), one and two channels, plus every named case.

    ``quick`` keeps the same shape of grid with fewer kernel sizes and one channel count.
    """
    cases = []
    for P in (1, 2, 3):
        sizes = range(1, 2 * P + 2) if not quick else sorted({1, 2, 2 * P + 1})
        for K in sizes:
            for ch in ((1, 1), (2, 2)) if not quick else ((2, 1),):
                cases.append(ConvCase(f"P={P} K={K} C={ch}", P, K, *ch))
    return (*cases, *NAMED_CASES)
