"""Figures of the report (PNG, matplotlib, no screen needed).

* ``attention_maps.png``: where the 9 heads of a converted 3x3 convolution look, on the
  patch grid around one query token;
* ``heads_vs_kernel.png``: heads of the construction and the lower bound ``rho`` against
  kernel size, for pixel and patch tokens;
* ``gap_error.png``: converted-convolution error against the softmax gap ``alpha``, with
  its bound (from the ``softmax_gap.conv`` obligation);
* ``floor.png``: trained error against the approximation floor for ``H`` heads (from the
  ``approximation_floor.training`` obligation).

Each function takes what it plots and a folder, writes one file and returns its path.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.files import atomic_write_bytes
from vitconv.numeric.patches import frame_image, patchify
from vitconv.proofs.checker import RunRecord
from vitconv.proofs.tables import FloorCurve, GapCurve
from vitconv.theory.bounds import generic_rank
from vitconv.theory.geometry import ConvGeometry

DPI = 150


def _save(fig: plt.Figure, path: Path) -> Path:
    """Render to PNG in memory and write it atomically under a unique temporary name
    (two runs into one folder never share a temporary file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def attention_maps(out_dir: Path, grid: int = 5) -> Path:
    """The 9 heads of ``as_attention(Conv2d(1, 1, 3, padding=1), patch_size=2)`` at the
    centre query of a ``grid x grid`` patch image (frame tokens hatched)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    attn = as_attention(conv, patch_size=2)
    x = torch.randn(1, 1, 2 * grid, 2 * grid)
    framed, rows, cols = frame_image(x, attn.geometry, attn.padding_mode)
    tokens = patchify(framed, 2)
    G = tokens.shape[1]
    window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
    A = attn.attention.attention_weights(tokens, window)[0]                # (H, Nq, Nk)
    centre = (grid // 2) * cols.query_tokens + grid // 2
    fig, axes = plt.subplots(3, 3, figsize=(7.5, 7.8))
    for h, ax in enumerate(axes.flat):
        weights = A[h, centre].reshape(G, G).numpy()
        ax.imshow(weights, cmap="Blues", vmin=0, vmax=1)
        for i in range(G):
            for j in range(G):
                if not (rows.frame_lo <= i < G - rows.frame_hi
                        and cols.frame_lo <= j < G - cols.frame_hi):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="0.75", linewidth=0))
        q = grid // 2 + rows.frame_lo
        ax.add_patch(Rectangle((q - 0.5, q - 0.5), 1, 1, fill=False, edgecolor="crimson",
                               linewidth=2))
        da, db = attn.head_plan[h]
        ax.set_title(f"head {h + 1}: offset ({da:+d}, {db:+d})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Attention of the 9 heads for one query (red) on the patch grid\n"
                 "3x3 convolution, 2x2 patches; hatched: padding frame; blue = weight 1",
                 fontsize=10)
    return _save(fig, out_dir / "attention_maps.png")


def heads_vs_kernel(out_dir: Path, kernels: range = range(1, 10)) -> Path:
    """Construction heads and generic ``rho`` (exact) against kernel size, for 1 -> 1 and
    4 -> 4 channels (pixel tokens need ``K^2`` heads only once channels allow it)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    for ax, channels in zip(axes, (1, 4), strict=True):
        for shift, (P, color) in zip((-0.12, 0.0, 0.12),
                                     ((1, "tab:red"), (2, "tab:blue"), (4, "tab:green")),
                                     strict=True):
            plan, rho = [], []
            for K in kernels:
                geom = ConvGeometry.from_conv_params(
                    kernel_size=K, patch_size=P, padding="same", in_channels=channels,
                    out_channels=channels)
                plan.append(geom.num_heads)
                rho.append(generic_rank(geom).rank)
            label = "pixel tokens (P=1)" if P == 1 else f"{P}x{P} patches"
            xs = [K + shift for K in kernels]  # a small shift keeps coinciding lines visible
            ax.plot(xs, plan, "o-", color=color, label=f"construction, {label}")
            ax.plot(xs, rho, "x--", color=color, markersize=8,
                    label=f"lower bound rho, {label}")
        ax.set_yscale("log")
        ax.set_xlabel("kernel size K ('same' padding)")
        ax.set_title(f"{channels} -> {channels} channel{'s' if channels > 1 else ''}",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("heads")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8,
               bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Heads needed: the construction (solid) against the lower bound rho (dashed)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, out_dir / "heads_vs_kernel.png")


def gap_error(out_dir: Path, data: GapCurve) -> Path:
    """Max error of a converted conv against ``alpha``, with the summed head bound."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.semilogy(data.alphas, data.max_bound, "s--", color="tab:orange",
                label=r"bound: $\sum_h \frac{n-1}{e^\alpha+n-1}\,$spread$_h$ + rounding")
    ax.semilogy(data.alphas, data.max_error, "o-", color="tab:blue",
                label="observed max |attention - conv|")
    ax.set_xlabel(r"softmax gap $\alpha$")
    ax.set_ylabel("absolute error (float64)")
    ax.set_title("Finite softmax gap: 3x3 conv, 2x2 patches, 9 heads", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "gap_error.png")


def floor(out_dir: Path, data: FloorCurve) -> Path:
    """Trained small-signal error against the Eckart-Young floor, per number of heads."""
    trained = data.trained
    heads = [t.heads for t in trained]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    H_all = list(range(1, len(data.floors)))
    ax.plot(H_all, data.floors[1:], "s--", color="tab:orange",
            label=r"floor $\sum_{i>H}\sigma_i^2 / \sum_i \sigma_i^2$")
    ax.plot(heads, [t.small_signal_error for t in trained], "o-", color="tab:blue",
            label="trained MHSA (exact, from its Jacobian at 0)")
    if data.one_head_optimum is not None:
        ax.plot([1], [data.one_head_optimum], "*", color="tab:green", markersize=11,
                label="best single non-negative head")
    ax.set_xlabel("heads H")
    ax.set_ylabel("relative mean-squared error")
    ax.set_title("Approximation floor: 3x3 conv on 2x2 patches (rho = 9)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "floor.png")


def all_figures(record: RunRecord, out_dir: Path) -> dict[str, Path]:
    """Every figure whose data this run produced (figures of skipped checks are skipped)."""
    paths = {"attention_maps": attention_maps(out_dir), "heads_vs_kernel": heads_vs_kernel(out_dir)}
    if (gap := record.table(GapCurve)) is not None:
        paths["gap_error"] = gap_error(out_dir, gap)
    if (curve := record.table(FloorCurve)) is not None:
        paths["floor"] = floor(out_dir, curve)
    return paths
