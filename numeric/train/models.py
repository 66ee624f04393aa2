"""The networks of the two-phase experiment (docs/theory.md §1 and §3.6), short enough to
read at once.

    image --stem (1x1 conv, per pixel)--> C' channels --patchify--> tokens (P*P*C')
          --[x + Mixer(LN(x)); x + MLP(LN(x))] x depth--> LN --mean over tokens--> linear

* phase 1: the mixer is a ``K x K`` convolution on the pixel image the tokens form;
* phase 2: the mixer is the relative-bias MHSA of the construction (``ConvAttention``);
* :func:`convert` turns a phase-1 network into a phase-2 network computing the same
  function (exactly with ``alpha=None``; to within the softmax-gap bound otherwise);
* :class:`ViT`: the conventional baseline, linear patch embedding and learned absolute
  positions, same depth and width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.conv_attention import ConvAttention, as_attention
from vitconv.numeric.patches import patchify, unpatchify
from vitconv.theory.construction import structural_widths
from vitconv.theory.geometry import ConvGeometry


@dataclass(frozen=True)
class NetConfig:
    """Shapes of every network in the experiment."""

    image_size: int = 28
    in_channels: int = 1
    classes: int = 10
    patch_size: int = 4
    channels: int = 8        # C' per pixel: tokens are P*P*C' = 128 wide
    depth: int = 2
    kernel_size: int = 5     # reaches 2 pixels: at most one patch past its own, 9 heads
    mlp_ratio: int = 2
    key_dim: int = 16        # phase-2 query/key width per head
    vit_heads: int = 8       # the baseline ViT's heads (token width / 16)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not a multiple of "
                             f"patch_size={self.patch_size}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd ('same' padding)")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def token_dim(self) -> int:
        return self.patch_size**2 * self.channels


class ConvMixer(nn.Module):
    """Phase-1 token mixer: a ``K x K`` convolution of the pixel image the tokens form."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv2d(cfg.channels, cfg.channels, cfg.kernel_size,
                              padding=cfg.kernel_size // 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:            # (B, G, G, D)
        P = self.cfg.patch_size
        return patchify(self.conv(unpatchify(tokens, (P, P), self.cfg.channels)), P)


class AttentionMixer(nn.Module):
    """Phase-2 token mixer: relative-bias MHSA on the same tokens (zero-token frame)."""

    def __init__(self, cfg: NetConfig, attention: ConvAttention) -> None:
        super().__init__()
        self.cfg = cfg
        self.attention = attention

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:            # (B, G, G, D)
        return self.attention.forward_tokens(tokens)  # zero-token frame, no image round trip


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class Block(nn.Module):
    """``x + Mixer(LN(x))`` then ``x + MLP(LN(x))`` on tokens ``(B, G, G, D)``."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.mixer = nn.LayerNorm(dim), mixer
        self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenNet(nn.Module):
    """Phase-1 and phase-2 network: tokens keep their pixel structure; only mixers differ."""

    def __init__(self, cfg: NetConfig, mixers: list[nn.Module]) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Conv2d(cfg.in_channels, cfg.channels, 1)  # per-pixel lift to C'
        self.blocks = nn.ModuleList(Block(cfg.token_dim, m, cfg.mlp_ratio) for m in mixers)
        self.norm = nn.LayerNorm(cfg.token_dim)
        self.head = nn.Linear(cfg.token_dim, cfg.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:            # (B, C, H, W)
        x = patchify(self.stem(images), self.cfg.patch_size)            # (B, G, G, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=(1, 2)))                 # (B, classes)


def phase1_net(cfg: NetConfig) -> TokenNet:
    """The phase-1 network: convolutional token mixers."""
    return TokenNet(cfg, [ConvMixer(cfg) for _ in range(cfg.depth)])


def attention_range(cfg: NetConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """A relative-bias table covering every offset between tokens of the framed grid."""
    reach = cfg.grid + 1
    return (-reach, reach), (-reach, reach)


def mixer_geometry(cfg: NetConfig) -> ConvGeometry:
    """The phase-1 mixer convolution on the token grid (no module built: no RNG used)."""
    return ConvGeometry.from_conv_params(
        kernel_size=cfg.kernel_size, patch_size=cfg.patch_size, padding=cfg.kernel_size // 2,
        in_channels=cfg.channels, out_channels=cfg.channels)


def value_widths(cfg: NetConfig) -> tuple[int, ...]:
    """Phase-2 value width of each head: the exact factor width of its block ``M_delta``
    for a generic kernel (``vitconv.theory.construction.structural_widths``), the most any kernel
    of the shape needs. A pure function of the shapes: it builds no module and consumes no
    random number, so a network's weights never depend on what ran before in the process."""
    return structural_widths(mixer_geometry(cfg))


def _random_attention(cfg: NetConfig) -> ConvAttention:
    return ConvAttention(mixer_geometry(cfg), "zeros", value_widths(cfg), key_dim=cfg.key_dim,
                         offset_range=attention_range(cfg))


def phase2_net(cfg: NetConfig) -> TokenNet:
    """The phase-2 architecture from random initialisation (the arm without phase 1)."""
    net = TokenNet(cfg, [AttentionMixer(cfg, _random_attention(cfg)) for _ in range(cfg.depth)])
    for block in net.blocks:
        block.mixer.attention.check_input = False
    return net


@torch.no_grad()
def convert(phase1: TokenNet, alpha: float | None = None) -> TokenNet:
    """A phase-2 network equal to ``phase1`` (docs/theory.md §3.6): a copy whose every convolutional
    mixer is replaced by ``as_attention`` of it, heads padded to the phase-2 value widths.

    ``alpha=None`` is exact (hard masks, untrainable attention pattern); a finite ``alpha``
    leaves every score trainable at the price of the softmax-gap error (docs/theory.md §3.4).
    The original network is not modified.
    """
    cfg = phase1.cfg
    widths = value_widths(cfg)
    net = copy.deepcopy(phase1)
    for block in net.blocks:
        if not isinstance(block.mixer, ConvMixer):
            raise TypeError(f"convert expects a phase-1 network; found {type(block.mixer)}")
        attention = as_attention(block.mixer.conv, cfg.patch_size, alpha=alpha,
                                 key_dim=cfg.key_dim, value_dims=widths,
                                 offset_range=attention_range(cfg))
        attention.check_input = False  # the training loop checks the loss instead
        block.mixer = AttentionMixer(cfg, attention)
    return net


class ViT(nn.Module):
    """Conventional ViT baseline: linear patch embedding, learned absolute positions,
    standard multi-head attention; same depth, token width and MLPs as ``TokenNet``."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        P, D = cfg.patch_size, cfg.token_dim
        self.embed = nn.Linear(P * P * cfg.in_channels, D)
        self.position = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, D))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            Block(D, _SelfAttention(D, cfg.vit_heads), cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, cfg.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = patchify(images, self.cfg.patch_size)                  # (B, G, G, P*P*C)
        x = self.embed(tokens.flatten(1, 2)) + self.position            # (B, N, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


ARMS = ("two_phase", "phase2_random", "phase1_only", "vit")


def build(arm: str, cfg: NetConfig) -> nn.Module:
    """The network an arm starts from (two-phase starts as phase 1)."""
    if arm in ("two_phase", "phase1_only"):
        return phase1_net(cfg)
    if arm == "phase2_random":
        return phase2_net(cfg)
    if arm == "vit":
        return ViT(cfg)
    raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
