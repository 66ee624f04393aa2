"""``vitconv bench``: speed and memory, reported as ratios measured side by side in one run
(never asserted in tests).

* **Layers**: ``as_attention(conv)`` on its sparse path against ``conv`` (with dense
  projections, and with the selection stored as indices, ``compact=True``), and its dense
  path (``F.scaled_dot_product_attention`` with the relative bias as mask) against a bare
  SDPA layer of equal shapes (same tokens, heads, key and value widths, no bias).
* **Networks** (pytorchcv, random weights, float32, ``--image`` pixels), each in a fresh
  process: conversion time; forward time of the CNN, of the converted network on the
  sparse path (batch 8) and on the dense path (batch 1); the largest logit difference;
  peak memory of conversion and of the CNN's own batch-1 forward: on the CPU each in a
  fresh process (peak resident memory above the process's size after ``import torch``),
  on CUDA the peak allocated device memory of each task (the weights included).
* **Training**: steps per second of the experiment's converted network (finite gap,
  dense path) against the conventional ViT and the convolutional network, next to the
  ratio of their floating-point operations per step (``torch.utils.flop_counter``): the
  speed ratio a compute-bound step would reach.
* **Symbolic**: the exact identity proof's time as ``P`` grows.

Every pair is timed alternately (``reps`` rounds of one call each), so machine noise hits
both sides alike; medians are reported. On CUDA every timing synchronises the device.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vitconv.numeric.conv_attention import ConvAttention, as_attention
from vitconv.numeric.evidence.checks import strict_float32
from vitconv.numeric.files import atomic_write_text
from vitconv.numeric.patches import frame_image, patchify
from vitconv.theory.construction import prove_identity
from vitconv.theory.geometry import ConvGeometry


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

NETWORKS = {  # pytorchcv module of each network (its model_provider needs torchvision)
    "resnet50": "resnet", "efficientnet_b0": "efficientnet",
    "mobilenetv3_large_w1": "mobilenetv3", "mobilenetv3_small_w1": "mobilenetv3",
    "resnet18": "resnet", "regnetx002": "regnet",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(fns: dict[str, Callable[[], object]], reps: int,
              device: torch.device) -> dict[str, float]:
    """Median seconds of each function, called in turn ``reps`` times after one warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def on_path(layers: list[nn.Module], path: str,
            fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` to be called with every layer of ``layers`` on execution ``path`` (the paths
    alternate inside one timing loop, so each call sets its own)."""
    def run() -> torch.Tensor:
        for layer in layers:
            layer.execution = path
        return fn()
    return run


class BareAttention(nn.Module):
    """A plain SDPA layer: ``H`` heads of key width ``dk`` and value width ``dv``, dense
    projections, no bias or mask: the yardstick of the dense path."""

    def __init__(self, d_in: int, d_out: int, heads: int, dk: int, dv: int) -> None:
        super().__init__()
        self.heads, self.dk, self.dv = heads, dk, dv
        self.query, self.key = nn.Linear(d_in, heads * dk), nn.Linear(d_in, heads * dk)
        self.value, self.output = nn.Linear(d_in, heads * dv), nn.Linear(heads * dv, d_out)

    def forward(self, x: torch.Tensor, window: tuple[int, int, int, int]) -> torch.Tensor:
        B, Gh, Gw, d_in = x.shape
        top, left, hq, wq = window
        keys = x.reshape(B, Gh * Gw, d_in)
        queries = x[:, top:top + hq, left:left + wq].reshape(B, hq * wq, d_in)
        split = lambda t, d: t.view(B, -1, self.heads, d).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(self.query(queries), self.dk),
                                             split(self.key(keys), self.dk),
                                             split(self.value(keys), self.dv))
        return self.output(out.transpose(1, 2).reshape(B, hq * wq, -1))


@torch.no_grad()
def bench_layer(layer: Layer, reps: int, seed: int, device: torch.device) -> dict:
    """Sparse path vs ``conv`` on images; dense path vs a bare SDPA layer on tokens."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(**layer.conv).to(device).eval()
    attn = as_attention(conv, layer.patch_size).eval()
    x = torch.randn(layer.batch, conv.in_channels, layer.image, layer.image, device=device)
    framed, rows, cols = frame_image(x, attn.geometry, attn.padding_mode)
    tokens = patchify(framed, layer.patch_size)
    window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
    att = attn.attention
    # Equal shapes: the same heads and key width, and the same total value width spread
    # evenly (SDPA needs one width for all heads).
    even = -(-attn.total_value_dim // att.num_heads)
    bare = BareAttention(tokens.shape[-1], attn.geometry.token_dim_out, att.num_heads,
                         att.key_dim, even).to(device).eval()

    compact = as_attention(conv, layer.patch_size, compact=True).eval()
    t = alternate({"conv": lambda: conv(x), "sparse": on_path([att], "sparse", lambda: attn(x)),
                   "compact": on_path([compact.attention], "sparse", lambda: compact(x)),
                   "dense": on_path([att], "dense", lambda: att(tokens, window)),
                   "sdpa": lambda: bare(tokens, window)}, reps, device)
    att.execution = "auto"
    return {"layer": layer.name, "patch_size": layer.patch_size, "heads": attn.num_heads,
            "value_width": attn.total_value_dim, "bare_value_width": att.num_heads * even,
            "batch": layer.batch, "image": layer.image,
            **{f"{k}_ms": 1e3 * v for k, v in t.items()},
            "sparse_vs_conv": t["sparse"] / t["conv"], "dense_vs_sdpa": t["dense"] / t["sdpa"],
            "compact_vs_conv": t["compact"] / t["conv"],
            "compact_selection": compact.construction.selection,
            "max_abs_diff": max(float((layer(x) - conv(x)).abs().max())
                                for layer in (attn, compact))}


def build_network(name: str) -> nn.Module:
    """A pytorchcv network with random weights, in eval mode (no download, no torchvision)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    module = importlib.import_module(f"pytorchcv.models.{NETWORKS[name]}")
    model = getattr(module, name)().eval()
    features = getattr(model, "features", None)
    if isinstance(getattr(features, "final_pool", None), nn.AvgPool2d):
        # A 7x7 average over the 7x7 map of a 224 image is the global average; the global
        # average also runs on smaller images (--quick).
        features.final_pool = nn.AdaptiveAvgPool2d(1)
    return model


def _status_bytes(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (the peak) of this process, from ``/proc/self/status``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory(name: str, task: str, image: int) -> dict:
    """In this (fresh) process: peak resident memory above the size after the imports
    for ``task`` = ``"forward"`` (build the CNN, one batch-1 forward) or ``"convert"``
    (build it, ``convert_model``), and the task's seconds. The kernel's peak counter is
    reset after the imports (``/proc/self/clear_refs``), so import-time peaks do not count."""
    from vitconv.numeric.convert import convert_model

    torch.manual_seed(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current size
    base = _status_bytes("VmRSS")
    model = build_network(name)
    x = torch.randn(1, 3, image, image)
    start = time.perf_counter()
    with torch.no_grad():
        if task == "forward":
            model(x)
        else:
            convert_model(model, x)
    seconds = time.perf_counter() - start
    return {"task": task, "seconds": seconds, "peak_bytes": _status_bytes("VmHWM") - base}


def _fresh(code: str, what: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _in_fresh_process(name: str, task: str, image: int) -> dict:
    return _fresh("import json, sys; from vitconv.report.bench import peak_memory; "
                  f"print(json.dumps(peak_memory({name!r}, {task!r}, {image})))",
                  f"measuring {task} of {name}")


def network_in_fresh_process(name: str, image: int, reps: int, device: str) -> dict:
    """:func:`bench_network` in a fresh interpreter: a network's timings must not depend
    on what ran before it in the process (allocator state, caches, earlier networks'
    large dense-path tensors)."""
    return _fresh("import json, torch; from vitconv.report.bench import bench_network, "
                  "_no_nan; print(json.dumps(_no_nan(bench_network("
                  f"{name!r}, {image}, {reps}, torch.device({device!r})))))",
                  f"benchmarking {name}")


DENSE_BUDGET_BYTES = 2 * 2**30  # skip the dense forward when one layer's scores need more


def largest_bias_bytes(converted: nn.Module) -> int:
    """Bytes of the largest ``(H, Nq, Nk)`` score-sized tensors the dense path forms in one
    layer of ``converted`` at batch 1 (the bias, its mask, the masked copy and the index
    tables; an estimate, not a measurement), from the
    conversion plan's input sizes: the dense path is quadratic in the tokens."""
    modules = dict(converted.named_modules())
    largest = 0
    for plan in converted.conversion_plan:
        layer = modules[plan.name]
        for h, w in plan.input_sizes:
            g = layer.geometry
            rows, cols = g.rows.grid(h, "height"), g.cols.grid(w, "width")
            pairs = (rows.query_tokens * cols.query_tokens
                     * rows.framed_tokens * cols.framed_tokens)
            itemsize = layer.attention.rel_bias.element_size()
            # bias, masked copy and mask per head; two int64 index tables per pair
            largest = max(largest, layer.num_heads * pairs * (2 * itemsize + 1) + 16 * pairs)
    return largest


@torch.no_grad()
def bench_network(name: str, image: int, reps: int, device: torch.device,
                  batch: int = 8) -> dict:
    """Conversion, forward (sparse at ``batch``, dense at batch 1) and memory of one network
    (float32; TF32 off on CUDA, :func:`float32_context`)."""
    with float32_context(device):
        return _bench_network(name, image, reps, device, batch)


def _bench_network(name: str, image: int, reps: int, device: torch.device,
                   batch: int) -> dict:
    from vitconv.numeric.convert import convert_model

    torch.manual_seed(0)
    model = build_network(name).to(device)
    example = torch.randn(1, 3, image, image, device=device)
    gpu_peaks = {}
    if device.type == "cuda":  # device memory: peak allocated, weights included, each task
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    model(example)  # a warm process on every device: conversion time without first-call costs
    _sync(device)
    if device.type == "cuda":
        gpu_peaks["forward"] = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    converted = convert_model(model, example).eval()
    _sync(device)
    convert_s = time.perf_counter() - start
    if device.type == "cuda":
        gpu_peaks["convert"] = torch.cuda.max_memory_allocated(device)
    layers = [m for m in converted.modules() if isinstance(m, ConvAttention)]

    x = torch.randn(batch, 3, image, image, device=device)
    sparse = alternate({"cnn": lambda: model(x),
                        "sparse": on_path(layers, "sparse", lambda: converted(x))}, reps, device)
    bias_bytes = largest_bias_bytes(converted)
    dense = {"cnn": math.nan, "dense": math.nan}
    if bias_bytes <= DENSE_BUDGET_BYTES:
        dense = alternate({"cnn": lambda: model(example),
                           "dense": on_path(layers, "dense", lambda: converted(example))},
                          1, device)
    logits = model(x), on_path(layers, "sparse", lambda: converted(x))()
    row = {"network": name, "image": image, "batch": batch, "layers": len(layers),
           "convert_s": convert_s, "cnn_ms": 1e3 * sparse["cnn"],
           "sparse_ms": 1e3 * sparse["sparse"], "sparse_vs_cnn": sparse["sparse"] / sparse["cnn"],
           "cnn_batch1_ms": 1e3 * dense["cnn"], "dense_batch1_ms": 1e3 * dense["dense"],
           "dense_vs_cnn": dense["dense"] / dense["cnn"],
           "dense_bias_gb": bias_bytes / 2**30,
           "max_logit_diff": float((logits[0] - logits[1]).abs().max()),
           "max_logit": float(logits[0].abs().max())}
    if gpu_peaks:
        row |= {"forward_peak_mb": gpu_peaks["forward"] / 2**20,
                "convert_peak_mb": gpu_peaks["convert"] / 2**20,
                "memory_ratio": gpu_peaks["convert"] / gpu_peaks["forward"]}
    if device.type == "cpu":
        fwd = _in_fresh_process(name, "forward", image)
        conv = _in_fresh_process(name, "convert", image)
        row |= {"forward_peak_mb": fwd["peak_bytes"] / 2**20,
                "convert_peak_mb": conv["peak_bytes"] / 2**20,
                "memory_ratio": conv["peak_bytes"] / fwd["peak_bytes"],
                "convert_fresh_s": conv["seconds"]}
    return row


def bench_training(reps: int, device: torch.device, seed: int) -> dict:
    """Steps per second of the experiment's networks: converted (finite gap) vs ViT vs CNN."""
    from vitconv.numeric.train.loop import TrainConfig
    from vitconv.numeric.train.models import NetConfig, ViT, convert, phase1_net

    torch.manual_seed(seed)
    cfg, train = NetConfig(), TrainConfig()
    nets = {"cnn": phase1_net(cfg), "converted": convert(phase1_net(cfg), alpha=train.alpha),
            "vit": ViT(cfg)}
    x = torch.randn(train.batch_size, cfg.in_channels, cfg.image_size, cfg.image_size,
                    device=device)
    y = torch.randint(0, cfg.classes, (train.batch_size,), device=device)
    steps, flops = {}, {}
    for key, net in nets.items():
        net.to(device).train()
        opt = torch.optim.AdamW(net.parameters(), train.lr, weight_decay=train.weight_decay)

        def step(net=net, opt=opt) -> None:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        steps[key] = step
        with FlopCounterMode(display=False) as counter:  # forward and backward
            step()
        flops[key] = counter.get_total_flops()
    t = alternate(steps, reps, device)
    paths = {b.mixer.attention.attention.path() for b in nets["converted"].blocks}
    return {"batch": train.batch_size, "token_dim": cfg.token_dim, "depth": cfg.depth,
            **{f"{k}_steps_per_s": 1 / v for k, v in t.items()},
            **{f"{k}_gflop_per_step": f / 1e9 for k, f in flops.items()},
            "converted_vs_vit": t["vit"] / t["converted"],
            "converted_vs_vit_flops": flops["vit"] / flops["converted"],
            "converted_vs_cnn": t["cnn"] / t["converted"], "converted_path": sorted(paths)}


def bench_symbolic(max_patch: int) -> list[dict]:
    """Time of the exact identity proof for ``K = 2P+1`` kernels, one channel, 2x2 grid."""
    rows = []
    for P in range(1, max_patch + 1):
        geom = ConvGeometry.from_conv_params(kernel_size=2 * P + 1, patch_size=P, padding=P)
        r = prove_identity(geom, 2 * P, 2 * P)
        rows.append({"patch_size": P, "kernel": 2 * P + 1, "outputs": r.outputs,
                     "monomials": r.terms, "seconds": r.seconds, "proved": r.proved})
    return rows


def _no_nan(value: object) -> object:
    """``value`` with every NaN (a measurement not run) as ``None``: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def float32_context(device: torch.device) -> contextlib.AbstractContextManager:
    """On CUDA, TF32 off (``strict_float32``): cuDNN convolutions use TF32 by default and
    matmuls do not, so both the speed comparison and the logit differences would mix
    precisions; float32 on both sides is the like-for-like comparison."""
    return strict_float32() if device.type == "cuda" else contextlib.nullcontext()


def run_benchmarks(out_dir: Path, console: Console, *, quick: bool = False, seed: int = 0,
                   device: str = "cpu", networks: tuple[str, ...] | None = None,
                   image: int | None = None) -> int:
    """Run every benchmark, print tables, write ``bench.json``; returns an exit status
    (non-zero when the symbolic proof fails: timings are reported, never judged)."""
    with float32_context(torch.device(device)):
        return _run_benchmarks(out_dir, console, quick=quick, seed=seed, device=device,
                               networks=networks, image=image)


def _run_benchmarks(out_dir: Path, console: Console, *, quick: bool, seed: int, device: str,
                    networks: tuple[str, ...] | None, image: int | None) -> int:
    dev = torch.device(device)
    reps = 3 if quick else 10
    image = image or (64 if quick else 224)
    networks = networks or (("resnet50",) if quick else
                            ("resnet50", "efficientnet_b0", "mobilenetv3_large_w1"))
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    tf32 = " (TF32 off)" if dev.type == "cuda" else ""
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {card}, "
                  f"float32{tf32}, {reps} alternating repetitions, "
                  f"{time.strftime('%Y-%m-%d')}")
    layers = []
    for layer in LAYERS:
        console.print(f"  layer {layer.name} ...")
        layers.append(bench_layer(layer, reps, seed, dev))
    console.print(_table(
        "one layer: sparse path vs Conv2d, dense path vs a bare SDPA layer (median ms)",
        ["layer", "P", "heads", "conv", "sparse", "sparse/conv", "compact/conv", "dense",
         "SDPA", "dense/SDPA", "max |diff|"],
        [[r["layer"], str(r["patch_size"]), str(r["heads"]), f"{r['conv_ms']:.2f}",
          f"{r['sparse_ms']:.2f}", f"{r['sparse_vs_conv']:.2f}x",
          f"{r['compact_vs_conv']:.2f}x",
          f"{r['dense_ms']:.2f}",
          f"{r['sdpa_ms']:.2f}", f"{r['dense_vs_sdpa']:.2f}x", f"{r['max_abs_diff']:.1e}"]
         for r in layers]))
    nets = []
    for name in networks:
        console.print(f"  network {name} at {image}x{image} (conversion, forward, memory) ...")
        row = network_in_fresh_process(name, image, reps, device)
        nets.append({k: math.nan if v is None else v for k, v in row.items()})
    mem = lambda r, k: f"{r[k]:.0f}" if k in r else "-"  # noqa: E731
    console.print(_table(
        f"networks at {image}x{image}, float32: converted vs CNN",
        ["network", "convert s", "CNN ms (b8)", "sparse ms", "sparse/CNN", "dense/CNN (b1)",
         "peak MB convert / fwd", "max |logit diff|"],
        [[r["network"], f"{r['convert_s']:.2f}", f"{r['cnn_ms']:.0f}", f"{r['sparse_ms']:.0f}",
          f"{r['sparse_vs_cnn']:.2f}x",
          f"{r['dense_vs_cnn']:.0f}x" if not math.isnan(r["dense_vs_cnn"])
          else f"not run ({r['dense_bias_gb']:.0f} GB)",
          f"{mem(r, 'convert_peak_mb')} / {mem(r, 'forward_peak_mb')}",
          f"{r['max_logit_diff']:.1e}"] for r in nets]))
    console.print("  training steps ...")
    training = bench_training(reps, dev, seed)
    console.print(_table(
        f"training steps/s (batch {training['batch']}, the experiment's networks)",
        ["converted (alpha finite)", "ViT", "CNN", "converted/ViT",
         "ViT/converted GFLOP per step"],
        [[f"{training['converted_steps_per_s']:.2f}", f"{training['vit_steps_per_s']:.2f}",
          f"{training['cnn_steps_per_s']:.2f}", f"{training['converted_vs_vit']:.2f}x",
          f"{training['vit_gflop_per_step']:.1f} / {training['converted_gflop_per_step']:.1f}"
          f" = {training['converted_vs_vit_flops']:.2f}x"]]))
    symbolic = bench_symbolic(2 if quick else 4)
    console.print(_table(
        "symbolic identity proof (K = 2P+1, 2x2 patches, 1 channel)",
        ["P", "kernel", "output pixels", "monomials", "seconds"],
        [[str(r["patch_size"]), str(r["kernel"]), str(r["outputs"]), str(r["monomials"]),
          f"{r['seconds']:.2f}"] for r in symbolic]))
    path = atomic_write_text(out_dir / "bench.json", json.dumps(_no_nan(
        {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
         "tf32": False,  # float32 throughout; on CUDA TF32 is switched off (float32_context)
         "threads": torch.get_num_threads(), "device": card, "reps": reps, "layers": layers,
         "networks": nets, "training": training, "symbolic": symbolic,
         "layer_specs": [asdict(x) for x in LAYERS]}),
        indent=2) + "\n")
    console.print(f"written: {path}")
    return 0 if all(r["proved"] for r in symbolic) else 1
