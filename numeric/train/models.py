"""The networks of the two-phase experiment (docs/theory.md §1 and §3.6), short enough to
read at once.

    image --stem (1x1 conv, per pixel)--> C' channels --patchify--> tokens (P*P*C')
          --[x + Mixer(LN(x)); x + MLP(LN(x))] x depth--> LN --mean over tokens--> linear

* phase 1: the mixer is a ``K x K`` convolution on the pixel image the tokens form;
* phase 2: the mixer is the relative-bias MHSA of the construction (``ConvAttention``);
* :func:`convert` turns a phase-1 network into a phase-2 network computing the same
  function (exactly with ``alpha=None``; to within the softmax-gap bound otherwise);
* :class:`ViT`: the conventional baseline, linear patch embedding and learned absolute
  positions, same depth and width;
* the ConViT arm: the same ViT with every attention replaced by :class:`GPSA`, gated
  positional self-attention initialised local (d'Ascoli et al., 2021), the published
  remedy for data-hungry ViTs: soft locality, against two-phase's exact transfer.
"""

from __future__ import annotations

import copy
import math
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
    gpsa_heads: int = 4      # ConViT's heads; a square number (ConViT-Ti: 4 at width 192)
    locality_strength: float = 1.0  # ConViT's default local initialisation

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} is not a multiple of "
                             f"patch_size={self.patch_size}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd ('same' padding)")
        for name in ("vit_heads", "gpsa_heads"):
            heads = getattr(self, name)
            if heads < 1 or self.token_dim % heads:
                raise ValueError(f"{name}={heads} must divide the token width "
                                 f"{self.token_dim} (patch_size**2 * channels)")
        if math.isqrt(self.gpsa_heads) ** 2 != self.gpsa_heads:
            raise ValueError(f"gpsa_heads={self.gpsa_heads} must be a square number: ConViT "
                             "centres its heads on a square grid of offsets")

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
    standard multi-head attention; same depth, token width and MLPs as ``TokenNet``.
    ``gated=True`` gives the ConViT arm: every attention is a local-initialised
    :class:`GPSA` (ConViT keeps plain attention only in the layers after its class token
    is inserted; the mean pooling here has no class token)."""

    def __init__(self, cfg: NetConfig, gated: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        P, D = cfg.patch_size, cfg.token_dim
        self.embed = nn.Linear(P * P * cfg.in_channels, D)
        self.position = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, D))
        nn.init.trunc_normal_(self.position, std=0.02)

        def mixer() -> nn.Module:
            if gated:
                return GPSA(D, cfg.gpsa_heads, cfg.grid, cfg.locality_strength)
            return _SelfAttention(D, cfg.vit_heads)

        self.blocks = nn.ModuleList(
            Block(D, mixer(), cfg.mlp_ratio) for _ in range(cfg.depth))
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


def relative_positions(grid: int) -> torch.Tensor:
    """``(N, N, 3)`` with ``N = grid**2`` (row-major tokens): for query ``i`` and key ``j``
    at offset ``(dy, dx) = pos_j - pos_i``, the features ``(dx, dy, dx**2 + dy**2)`` of
    ConViT's positional score."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    dy = ys.flatten()[None, :] - ys.flatten()[:, None]
    dx = xs.flatten()[None, :] - xs.flatten()[:, None]
    return torch.stack([dx, dy, dx**2 + dy**2], dim=-1).float()


def head_centres(heads: int) -> list[tuple[float, float]]:
    """ConViT's local initialisation centres head ``h = a + k b`` (``k = sqrt(heads)``) on
    the offset ``(dy, dx) = (a - c, b - c)``, ``c = (k - 1) / 2``: a ``k x k`` square of
    offsets around the query (``{-1, 0, 1}^2`` for 9 heads, ``{-1/2, 1/2}^2`` for 4)."""
    k = math.isqrt(heads)
    c = (k - 1) / 2
    return [(a - c, b - c) for b in range(k) for a in range(k)]


class GPSA(nn.Module):
    """Gated positional self-attention (ConViT, d'Ascoli et al., 2021, eq. 5) on a
    ``grid x grid`` token grid, ``(B, N, D) -> (B, N, D)``:

        A_h = (1 - g_h) softmax(Q_h K_h^T / sqrt(d)) + g_h softmax_j(v_h . r_ij),
        g_h = sigmoid(lambda_h)

    with ``r_ij`` the relative-position features of :func:`relative_positions`. Local
    initialisation (the paper's, and its code's): ``v_h = s (2 delta_x, 2 delta_y, -1)``
    for the head centre ``delta`` of :func:`head_centres` and locality strength ``s``, so the
    positional score is ``-s |r - delta|^2`` up to a constant and the positional attention
    peaks at the key ``delta`` away; gates ``lambda_h = 1`` (73% positional); the value
    projection starts as the identity.
    """

    def __init__(self, dim: int, heads: int, grid: int, locality_strength: float = 1.0) -> None:
        super().__init__()
        if dim % heads or math.isqrt(heads) ** 2 != heads:
            raise ValueError(f"GPSA needs a square number of heads dividing dim; got "
                             f"heads={heads}, dim={dim}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qk = nn.Linear(dim, 2 * dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, heads)
        self.gating = nn.Parameter(torch.ones(heads))
        self.register_buffer("rel", relative_positions(grid), persistent=False)
        with torch.no_grad():
            self.v.weight.copy_(torch.eye(dim))
            self.pos_proj.bias.zero_()  # as ConViT's code (softmax ignores it anyway)
            for h, (dy, dx) in enumerate(head_centres(heads)):
                self.pos_proj.weight[h] = locality_strength * torch.tensor([2 * dx, 2 * dy, -1.0])

    def positional(self) -> torch.Tensor:
        """``(H, N, N)``: each head's positional attention (rows sum to 1)."""
        return self.pos_proj(self.rel.to(self.pos_proj.weight.dtype)).permute(2, 0, 1).softmax(-1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, N, N)``: the gated mixture of content and positional attention."""
        B, N, D = x.shape
        q, k = self.qk(x).reshape(B, N, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        content = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        gate = torch.sigmoid(self.gating).view(1, -1, 1, 1)
        return (1 - gate) * content + gate * self.positional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        v = self.v(x).reshape(B, N, self.heads, D // self.heads).transpose(1, 2)
        return self.proj((self.attention(x) @ v).transpose(1, 2).reshape(B, N, D))


ARMS = ("two_phase", "phase2_random", "phase1_only", "vit", "convit")


def build(arm: str, cfg: NetConfig) -> nn.Module:
    """The network an arm starts from (two-phase starts as phase 1)."""
    if arm in ("two_phase", "phase1_only"):
        return phase1_net(cfg)
    if arm == "phase2_random":
        return phase2_net(cfg)
    if arm == "vit":
        return ViT(cfg)
    if arm == "convit":
        return ViT(cfg, gated=True)
    raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
