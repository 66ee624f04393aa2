"""Benchmarks, reported as ratios measured side by side in one run (never asserted).

* Forward time of ``as_attention(conv)`` against ``conv`` itself for realistic layers:
  both run alternately in the same process, same input, same thread count; the ratio of
  medians is reported.
* Time of the symbolic identity proof as the patch size grows.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from numeric.conv_attention import as_attention
from numeric.files import atomic_write_text
from theory.construction import prove_identity
from theory.geometry import ConvGeometry


@dataclass(frozen=True)
class Layer:
    name: str
    conv: dict
    patch_size: int
    image: int
    batch: int = 8


LAYERS = (
    Layer("3x3 64->64 (ResNet stage)", dict(in_channels=64, out_channels=64, kernel_size=3,
                                             padding=1), 2, 32),
    Layer("5x5 16->32", dict(in_channels=16, out_channels=32, kernel_size=5, padding=2), 4, 32),
    Layer("7x7/2 3->64 (ResNet stem)", dict(in_channels=3, out_channels=64, kernel_size=7,
                                             stride=2, padding=3), 4, 64),
    Layer("3x3 depthwise 64", dict(in_channels=64, out_channels=64, kernel_size=3, padding=1,
                                   groups=64), 2, 32),
    Layer("1x1 64->128", dict(in_channels=64, out_channels=128, kernel_size=1), 1, 16),
)


def _median_time(fn, x: torch.Tensor, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def bench_layer(layer: Layer, reps: int, seed: int) -> dict:
    """Median forward times of conv and its attention form, measured alternately."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(**layer.conv).eval()
    attn = as_attention(conv, layer.patch_size).eval()
    x = torch.randn(layer.batch, conv.in_channels, layer.image, layer.image)
    conv(x), attn(x)  # warm-up
    conv_t, attn_t = [], []
    for _ in range(reps):  # alternate so that machine noise hits both sides alike
        conv_t += _median_time(conv, x, 1)
        attn_t += _median_time(attn, x, 1)
    c, a = statistics.median(conv_t), statistics.median(attn_t)
    return {"layer": layer.name, "patch_size": layer.patch_size, "heads": attn.num_heads,
            "value_width": attn.total_value_dim,
            "value_width_if_full": attn.num_heads * attn.geometry.token_dim_in,
            "batch": layer.batch, "image": layer.image, "conv_ms": 1e3 * c,
            "attention_ms": 1e3 * a, "ratio": a / c,
            "max_abs_diff": float((attn(x) - conv(x)).abs().max())}


def bench_symbolic(max_patch: int) -> list[dict]:
    """Time of the exact identity proof for ``K = 2P+1`` kernels, one channel, 2x2 grid."""
    rows = []
    for P in range(1, max_patch + 1):
        geom = ConvGeometry.from_conv_params(kernel_size=2 * P + 1, patch_size=P, padding=P)
        r = prove_identity(geom, 2 * P, 2 * P)
        rows.append({"patch_size": P, "kernel": 2 * P + 1, "outputs": r.outputs,
                     "monomials": r.terms, "seconds": r.seconds, "proved": r.proved})
    return rows


def run_benchmarks(out_dir: Path, console: Console, *, quick: bool = False, seed: int = 0) -> int:
    """Run both benchmarks, print tables, write ``bench.json``; returns an exit status."""
    reps = 5 if quick else 20
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{reps} alternating repetitions per layer, float32, CPU")
    layers = []
    for layer in LAYERS:
        console.print(f"  timing {layer.name} ...")
        layers.append(bench_layer(layer, reps, seed))
    table = Table(title="forward time: attention form vs Conv2d (median)")
    for col in ("layer", "P", "heads", "value width (min / full)", "conv ms", "attention ms",
                "ratio", "max |diff|"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in layers:
        table.add_row(r["layer"], str(r["patch_size"]), str(r["heads"]),
                      f"{r['value_width']} / {r['value_width_if_full']}",
                      f"{r['conv_ms']:.2f}", f"{r['attention_ms']:.2f}", f"{r['ratio']:.1f}x",
                      f"{r['max_abs_diff']:.1e}")
    console.print(table)
    symbolic = bench_symbolic(2 if quick else 4)
    table = Table(title="symbolic identity proof (K = 2P+1, 2x2 patches, 1 channel)")
    for col in ("P", "kernel", "output pixels", "monomials", "seconds"):
        table.add_column(col, justify="right")
    for r in symbolic:
        table.add_row(str(r["patch_size"]), str(r["kernel"]), str(r["outputs"]),
                      str(r["monomials"]), f"{r['seconds']:.2f}")
    console.print(table)
    path = atomic_write_text(out_dir / "bench.json", json.dumps(
        {"torch": torch.__version__, "threads": torch.get_num_threads(), "reps": reps,
         "layers": layers, "symbolic": symbolic, "layer_specs": [asdict(x) for x in LAYERS]},
        indent=2) + "\n")
    console.print(f"written: {path}")
    return 0 if all(r["proved"] for r in symbolic) else 1
