"""One numeric check of the construction theorem, shared by the tests and ``vitconv verify``.

:func:`compare_case` builds a random convolution of a :class:`~theory.cases.ConvCase`,
converts it with :func:`~numeric.conv_attention.as_attention`, and compares three outputs
pairwise: the attention layer, ``F.conv2d`` (through ``nn.Conv2d``) and the NumPy float64
reference, each against the sum of the two sides' rounding-error bounds
(``vitconv.numeric.tolerances``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from vitconv.numeric.conv_attention import ConvAttention, as_attention
from vitconv.numeric.evidence.reference import conv2d_reference
from vitconv.numeric.grouped_linear import weight_matrix
from vitconv.numeric.tolerances import (
    attention_error_bound,
    comparison_ratio,
    control_perturbation,
    conv_error_bound,
    reference_bound,
)
from vitconv.theory.cases import ConvCase
from vitconv.theory.construction import symbolic_blocks


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
    control_ratio: float = float("inf")  # the negative control's ratio: must exceed 1

    @property
    def passed(self) -> bool:
        """Every bound held, and the negative control was rejected (the bound is tight
        enough to catch an error of a few rounding units)."""
        return self.shape_ok and self.worst_ratio <= 1.0 and self.control_ratio > 1.0


EXECUTION_PATHS = ("sparse", "dense")  # numeric.attention: one-key reads, every score
STORED_FORMS = ("dense", "compact")  # as_attention(compact=): the selection factor as indices


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
    """Convert a random conv of ``case`` and compare attention (on both execution paths,
    with dense projections and with the selection factor stored as indices), conv and the
    float64 reference: each output against the convolution and the reference, the outputs
    against each other (bound: twice the layer's), and the convolution against the
    reference. The negative control must be rejected on every output."""
    gen = torch.Generator().manual_seed(seed)
    conv = random_conv(case, gen, dtype, device)
    x = torch.randn(batch, case.in_channels, *case.image, generator=gen, dtype=dtype).to(device)
    attn = as_attention(conv, case.patch_size)
    forms = (attn, as_attention(conv, case.patch_size, compact=True))
    paths = {}
    with torch.no_grad():
        for form, layer in zip(STORED_FORMS, forms, strict=True):
            for path in EXECUTION_PATHS:  # the same layer, both ways of computing it
                layer.execution = path
                paths[form, path] = layer(x)
            layer.execution = "auto"
        y_conv = conv(x)
    w = conv.weight.detach().cpu().numpy()
    b = conv.bias.detach().cpu().numpy() if conv.bias is not None else None
    y_ref = torch.from_numpy(conv2d_reference(
        x.cpu().numpy(), w, b, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, padding_mode=conv.padding_mode)).to(device)
    shape_ok = all(y.shape == y_conv.shape == y_ref.shape for y in paths.values())
    if not shape_ok:
        return Comparison(case, str(dtype), str(device), attn.num_heads, attn.total_value_dim,
                          float("inf"), float("inf"), float("inf"), False)
    b_att = attention_error_bound(attn, conv, x)
    b_conv = conv_error_bound(conv, x, dtype)
    b_ref = reference_bound(conv, x)
    first = paths[STORED_FORMS[0], EXECUTION_PATHS[0]]
    worst = max(*(comparison_ratio(y, first, 2 * b_att) for y in paths.values()),
                comparison_ratio(y_conv, y_ref, b_conv + b_ref),
                *(comparison_ratio(y, y_conv, b_att + b_conv) for y in paths.values()),
                *(comparison_ratio(y, y_ref, b_att + b_ref) for y in paths.values()))
    shift = control_perturbation(conv, attn, x)
    control = min(comparison_ratio(y.double() + shift, y_conv, b_att + b_conv)
                  for y in paths.values())
    err = lambda a, b: float((a.double() - b.double()).abs().max())  # noqa: E731
    return Comparison(case, str(dtype).removeprefix("torch."), str(device), attn.num_heads,
                      attn.total_value_dim,
                      max(err(y, y_conv) for y in paths.values()),
                      max(err(y, y_ref) for y in paths.values()), worst, True, control)


class strict_float32:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Switch TF32 off on CUDA, so that float32 results obey float32 rounding bounds: cuDNN
    convolutions use it by default, and matmuls wherever a program has allowed it
    (``torch.backends.cuda.matmul.allow_tf32``, ``torch.set_float32_matmul_precision``);
    restores the previous settings."""

    def __enter__(self) -> None:
        self._saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved


def _rational_matrix(t: torch.Tensor):
    """A float tensor as a sympy ``DomainMatrix`` over QQ, entry by entry exactly."""
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix

    rows = [[QQ(*Fraction(v).as_integer_ratio()) for v in row]
            for row in t.detach().to(torch.float64).cpu().tolist()]
    return DomainMatrix(rows, tuple(t.shape), QQ)


def exact_construction_mismatch(conv: nn.Conv2d, attn: ConvAttention) -> str | None:
    """Check, exactly in rationals, that ``attn`` holds the weights the construction
    theorem prescribes for ``conv`` (docs/theory.md §3.2); ``None`` if it does, else what
    differs.

    Reads the layer's own parameters and compares them with the blocks that
    ``vitconv.theory.construction.symbolic_blocks`` builds from the kernel's exact values: per head
    ``h`` of offset ``delta_h``, ``W_V^h W_O^h == M_{delta_h}`` and a mask that keeps
    exactly ``delta_h`` with bias 0 there; ``W_Q``, ``W_K`` and their biases zero; ``b_V``
    zero and ``b_O == beta``; and the plan equal to the offsets the kernel reaches.
    """
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix

    geom = attn.geometry
    if attn.head_plan != geom.head_plan():
        return f"head plan {attn.head_plan} is not the offsets reached {geom.head_plan()}"
    att = attn.attention
    for name, p in (("W_Q", att.query.weight), ("b_Q", att.query.bias),
                    ("W_K", att.key.weight), ("b_K", att.key.bias), ("b_V", att.value.bias)):
        if bool((p != 0).any()):
            return f"{name} is not zero"
    weights = {k: Fraction(v) for k, v in zip(*_kernel_items(conv), strict=True)}
    blocks = symbolic_blocks(geom, weights)
    values = weight_matrix(att.value).T.split(att.value_dims, dim=1)     # (d_in, d_v^h) each
    outputs = weight_matrix(att.output).T.split(att.value_dims, dim=0)   # (d_v^h, d_out) each
    (lo_h, _), (lo_w, _) = att.offset_range
    for h, delta in enumerate(geom.head_plan()):
        M = blocks[delta]
        target = DomainMatrix([[QQ(int(v.p), int(v.q)) for v in M.row(i)]
                               for i in range(M.rows)], (M.rows, M.cols), QQ)
        if _rational_matrix(values[h]).matmul(_rational_matrix(outputs[h])) != target:
            return f"head {h}: W_V W_O != M_{delta}"
        allowed = att.rel_mask[h].nonzero().tolist()
        if allowed != [[delta[0] - lo_h, delta[1] - lo_w]]:
            return f"head {h}: the mask keeps {allowed}, not offset {delta} alone"
        if float(att.rel_bias.detach()[h, delta[0] - lo_h, delta[1] - lo_w]) != 0.0:
            return f"head {h}: nonzero bias at its target offset"
    pixels = geom.rows.out_patch * geom.cols.out_patch
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    beta = bias.detach().to(torch.float64).cpu().repeat(pixels)
    if not torch.equal(att.output.bias.detach().to(torch.float64).cpu(), beta):
        return "b_O is not beta (the bias tiled over the output pixels of a patch)"
    return None


def _kernel_items(conv: nn.Conv2d) -> tuple[list[tuple[int, int, int, int]], list[float]]:
    """The kernel's keys ``(o, c_local, s, t)`` and float values, in one order."""
    w = conv.weight.detach().to(torch.float64).cpu()
    keys = [(o, c, s, t) for o in range(w.shape[0]) for c in range(w.shape[1])
            for s in range(w.shape[2]) for t in range(w.shape[3])]
    return keys, [float(w[k]) for k in keys]
